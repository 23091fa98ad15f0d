# What the test hosts need beyond the shared interface in nodes.tf.

variable "create_delay_seconds" {
  description = "Seconds each host takes to \"boot\" (a local-exec sleep), so tests can cancel mid-apply."
  type        = number
  default     = 0
}
