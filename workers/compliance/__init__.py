"""CIS compliance: kube-bench on every node of a cluster, its results kept, compared and scheduled.

The cis.scan operation registers from `workers.compliance.operation` (workers.operations loads it), so
importing the report models (the offline bundle's plan does, for kube-bench's version) loads no runner.
"""
