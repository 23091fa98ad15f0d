output "nodes" {
  description = "Created machines keyed by node name: address, role and the platform's id."
  value = {
    for name, node in terraform_data.node : name => {
      ip   = node.input.ip
      role = node.input.role
      id   = node.id
    }
  }
}
