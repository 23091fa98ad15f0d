terraform {
  required_version = ">= 1.5"
  required_providers {
    openstack = {
      source  = "terraform-provider-openstack/openstack"
      version = ">= 2.0, < 4.0"
    }
  }
}

provider "openstack" {}

data "openstack_images_image_v2" "os" {
  name        = var.image
  most_recent = true
}

resource "openstack_networking_port_v2" "node" {
  for_each = var.nodes

  name               = each.key
  network_id         = var.network_id
  security_group_ids = var.security_group_ids

  fixed_ip {
    subnet_id  = var.subnet_id
    ip_address = each.value.ip
  }

  dynamic "allowed_address_pairs" {
    for_each = local.allowed_addresses[each.key]
    content {
      ip_address = allowed_address_pairs.value
    }
  }
}

resource "openstack_compute_instance_v2" "node" {
  for_each = var.nodes

  name              = each.key
  flavor_name       = contains(var.gpu_nodes, each.key) ? var.gpu_flavor : var.flavors[each.value.role]
  availability_zone = var.availability_zones[each.value.zone]
  user_data = templatefile("${path.module}/../cloud-init/user-data.yaml.tftpl", {
    hostname       = each.key
    ssh_user       = var.ssh_user
    ssh_public_key = var.ssh_public_key
  })

  block_device {
    uuid                  = data.openstack_images_image_v2.os.id
    source_type           = "image"
    destination_type      = "volume"
    volume_size           = each.value.disk
    volume_type           = var.volume_type
    boot_index            = 0
    delete_on_termination = true
  }

  network {
    port = openstack_networking_port_v2.node[each.key].id
  }

  metadata = {
    kobot_role = each.value.role
    kobot_zone = each.value.zone
  }
}
