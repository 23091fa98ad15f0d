# Test module: records what environment a Terraform run sees, through the same nodes interface.

variable "nodes" {
  type = map(object({ role = string, ip = string, cpu = number, memory = number, disk = number, zone = string }))
}

variable "probe_file" {
  type = string
}

resource "terraform_data" "node" {
  for_each = var.nodes
  input    = each.value

  provisioner "local-exec" {
    command = "printf '%s\\n%s\\n%s\\n' \"$TF_CLI_CONFIG_FILE\" \"$PROBE_CREDENTIAL\" \"$${HOME_SECRET:-unset}\" > ${var.probe_file}"
  }
}

output "nodes" {
  value = { for name, node in terraform_data.node : name => { ip = node.input.ip, role = node.input.role, id = node.id } }
}
