terraform {
  required_version = ">= 1.5"
  required_providers {
    vsphere = {
      source  = "hashicorp/vsphere"
      version = ">= 2.6, < 3.0"
    }
  }
}

provider "vsphere" {
  allow_unverified_ssl = false
}

data "vsphere_datacenter" "dc" {
  name = var.datacenter
}

data "vsphere_compute_cluster" "zone" {
  for_each      = var.zones
  name          = each.value.compute_cluster
  datacenter_id = data.vsphere_datacenter.dc.id
}

data "vsphere_datastore" "zone" {
  for_each      = var.zones
  name          = each.value.datastore
  datacenter_id = data.vsphere_datacenter.dc.id
}

data "vsphere_network" "net" {
  name          = var.network
  datacenter_id = data.vsphere_datacenter.dc.id
}

data "vsphere_virtual_machine" "template" {
  name          = var.template
  datacenter_id = data.vsphere_datacenter.dc.id
}

locals {
  user_data = {
    for name, node in var.nodes : name => templatefile("${path.module}/../cloud-init/user-data.yaml.tftpl", {
      hostname       = name
      ssh_user       = var.ssh_user
      ssh_public_key = var.ssh_public_key
    })
  }
  network_config = {
    for name, node in var.nodes : name => templatefile("${path.module}/../cloud-init/network-config.yaml.tftpl", {
      ip            = node.ip
      prefix_length = var.prefix_length
      gateway       = var.gateway
      dns_servers   = var.dns_servers
    })
  }
}

resource "vsphere_virtual_machine" "node" {
  for_each = var.nodes

  name             = each.key
  folder           = var.folder
  resource_pool_id = data.vsphere_compute_cluster.zone[each.value.zone].resource_pool_id
  datastore_id     = data.vsphere_datastore.zone[each.value.zone].id
  num_cpus         = each.value.cpu
  memory           = each.value.memory
  guest_id         = data.vsphere_virtual_machine.template.guest_id
  firmware         = data.vsphere_virtual_machine.template.firmware
  pci_device_id    = contains(keys(var.gpu_nodes), each.key) ? [var.gpu_nodes[each.key]] : []

  network_interface {
    network_id = data.vsphere_network.net.id
  }

  disk {
    label            = "disk0"
    size             = each.value.disk
    thin_provisioned = true
  }

  clone {
    template_uuid = data.vsphere_virtual_machine.template.id
  }

  extra_config = {
    "guestinfo.userdata"          = base64encode(local.user_data[each.key])
    "guestinfo.userdata.encoding" = "base64"
    "guestinfo.metadata" = base64encode(jsonencode({
      "local-hostname" = each.key
      "network"        = base64encode(local.network_config[each.key])
      "network.encoding" = "base64"
    }))
    "guestinfo.metadata.encoding" = "base64"
  }

  lifecycle {
    ignore_changes = [clone[0].template_uuid]
  }
}
