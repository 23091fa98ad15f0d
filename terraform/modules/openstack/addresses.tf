# Addresses a node's port lets through besides its own. OpenStack port security drops traffic from or
# to any address a port does not own, so keepalived's VIP (it moves between masters) and pod traffic
# routed without encapsulation (pod source addresses) need allowed address pairs.
# No conditional expressions here: Terraform's config loader, which kobot uses to read a module's
# variables, cannot export a local that holds one (tests/workers/test_terraform.py loads this module).

variable "api_vip_cidr" {
  description = "The API's VIP as a one-address network (10.0.0.100/32); empty when the cluster has none."
  type        = string
  default     = ""
}

variable "pod_cidr" {
  description = "The cluster's pod range; empty to allow no pod addresses."
  type        = string
  default     = ""
}

locals {
  allowed_addresses = {
    for name, node in var.nodes : name => compact(concat(
      lookup({ master = [var.api_vip_cidr] }, node.role, []),
      [var.pod_cidr],
    ))
  }
}
