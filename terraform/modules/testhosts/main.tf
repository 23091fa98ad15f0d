# Stands in for an IaaS in tests: one terraform_data resource per node, no provider at all.

terraform {
  required_version = ">= 1.5"
}

resource "terraform_data" "node" {
  for_each = var.nodes

  input = {
    name = each.key
    role = each.value.role
    ip   = each.value.ip
    zone = each.value.zone
  }

  provisioner "local-exec" {
    command = "sleep ${var.create_delay_seconds}"
  }
}
