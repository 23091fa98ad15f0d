# Platform settings. Credentials are not variables: the provider reads OS_AUTH_URL, OS_USERNAME,
# OS_PASSWORD (or OS_APPLICATION_CREDENTIAL_*), OS_PROJECT_NAME... from the environment kobot gives Terraform.

variable "image" {
  description = "Image name with cloud-init."
  type        = string
}

variable "flavors" {
  description = "Flavor per role: on OpenStack the flavor sets CPU and memory, the nodes map sets the disk."
  type        = map(string)
}

variable "gpu_flavor" {
  type    = string
  default = ""
}

variable "gpu_nodes" {
  type    = set(string)
  default = []
}

variable "network_id" {
  type = string
}

variable "subnet_id" {
  type = string
}

variable "security_group_ids" {
  type    = list(string)
  default = []
}

variable "availability_zones" {
  description = "kobot zone name -> OpenStack availability zone."
  type        = map(string)
}

variable "volume_type" {
  description = "Cinder volume type of the boot volumes; null takes the cloud's default."
  type        = string
  default     = null
}

variable "ssh_user" {
  type    = string
  default = "root"
}

variable "ssh_public_key" {
  type = string
}
