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

variable "create_delay_seconds" {
  description = "Seconds each host takes to \"boot\" (a local-exec sleep), so tests can cancel mid-apply."
  type        = number
  default     = 0
}
