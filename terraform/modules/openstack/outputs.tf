output "nodes" {
  description = "Created machines keyed by node name: address, role and the instance id."
  value = {
    for name, vm in openstack_compute_instance_v2.node : name => {
      ip   = var.nodes[name].ip
      role = var.nodes[name].role
      id   = vm.id
    }
  }
}
