output "nodes" {
  description = "Created machines keyed by node name: address, role and the VM's UUID."
  value = {
    for name, vm in vsphere_virtual_machine.node : name => {
      ip   = var.nodes[name].ip
      role = var.nodes[name].role
      id   = vm.uuid
    }
  }
}
