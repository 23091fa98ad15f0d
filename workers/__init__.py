"""RQ job functions and the runners they drive (Ansible, Terraform, Kubernetes client).

Workers publish events; they never import a chat adapter.
"""
