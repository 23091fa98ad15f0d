# Platform settings. Credentials are not variables: the provider reads VSPHERE_USER, VSPHERE_PASSWORD
# and VSPHERE_SERVER from the environment kobot gives Terraform.

variable "datacenter" {
  type = string
}

variable "zones" {
  description = "Zone name -> where its machines go (a compute cluster and datastore per failure domain)."
  type = map(object({
    compute_cluster = string
    datastore       = string
  }))
}

variable "network" {
  description = "Port group every node is attached to."
  type        = string
}

variable "template" {
  description = "VM template with cloud-init (guestinfo datasource) to clone."
  type        = string
}

variable "folder" {
  type    = string
  default = ""
}

variable "prefix_length" {
  type = number
}

variable "gateway" {
  type = string
}

variable "dns_servers" {
  type    = list(string)
  default = []
}

variable "ssh_user" {
  type    = string
  default = "root"
}

variable "ssh_public_key" {
  description = "Public key (not a secret) authorized for ssh_user on every node."
  type        = string
}

variable "gpu_nodes" {
  description = "Node names that get a PCI passthrough GPU (by host PCI device id)."
  type        = map(string)
  default     = {}
}
