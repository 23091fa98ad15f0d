# Test module: an apply that fails and prints the provider credential from its environment, plainly and
# in base64, as a careless provisioner or provider error could. Same nodes interface as the host modules.

variable "nodes" {
  type = map(object({ role = string, ip = string, cpu = number, memory = number, disk = number, zone = string }))
}

resource "terraform_data" "node" {
  for_each = var.nodes
  input    = each.value

  provisioner "local-exec" {
    command = "printf 'login with %s refused\\n' \"$VSPHERE_PASSWORD\"; printf '%s' \"$VSPHERE_PASSWORD\" | base64; exit 3"
  }
}

output "nodes" {
  value = { for name, node in terraform_data.node : name => { ip = node.input.ip, role = node.input.role, id = node.id } }
}
