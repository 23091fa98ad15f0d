# The interface every kobot host module shares: a `nodes` map in, a `nodes` map out.

variable "nodes" {
  description = "Machines keyed by node name; removing a key destroys only that machine."
  type = map(object({
    role   = string
    ip     = string
    cpu    = number
    memory = number
    disk   = number
    zone   = string
  }))

  validation {
    condition     = alltrue([for n in values(var.nodes) : contains(["master", "worker"], n.role)])
    error_message = "Each node's role must be master or worker."
  }
}
