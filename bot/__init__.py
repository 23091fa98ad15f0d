"""kobot: ChatOps for the whole life of production Kubernetes clusters."""
