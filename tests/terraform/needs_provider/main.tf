# Test module: needs a provider, so `init` must look in kobot's offline mirror and nowhere else.

terraform {
  required_providers {
    null = {
      source  = "hashicorp/null"
      version = ">= 3.0"
    }
  }
}

variable "nodes" {
  type = map(any)
}

resource "null_resource" "node" {
  for_each = var.nodes
}

output "nodes" {
  value = {}
}
