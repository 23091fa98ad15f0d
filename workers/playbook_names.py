"""kobot's entry playbooks by file name, relative to `playbooks_dir`: the one place steps name them."""

from __future__ import annotations

PREFLIGHT = "preflight.yml"
BASE_OS = "base_os.yml"
CONTAINER_RUNTIME = "container_runtime.yml"
KUBERNETES_PACKAGES = "kubernetes_packages.yml"
LOAD_BALANCER = "load_balancer.yml"
CONTROL_PLANE = "control_plane.yml"
WORKERS_JOIN = "workers_join.yml"
CNI = "cni.yml"
ADDONS = "addons.yml"
POST = "post.yml"
NODE_ADD = "node_add.yml"
NODE_REMOVE = "node_remove.yml"
CLUSTER_UPGRADE = "cluster_upgrade.yml"
CLUSTER_DELETE = "cluster_delete.yml"
ETCD_BACKUP = "etcd_backup.yml"
ETCD_RESTORE = "etcd_restore.yml"
CLUSTER_CERT_RENEW = "cluster_cert_renew.yml"
CIS_SCAN = "cis_scan.yml"

ENTRY_PLAYBOOKS: tuple[str, ...] = (
    PREFLIGHT,
    BASE_OS,
    CONTAINER_RUNTIME,
    KUBERNETES_PACKAGES,
    LOAD_BALANCER,
    CONTROL_PLANE,
    WORKERS_JOIN,
    CNI,
    ADDONS,
    POST,
    NODE_ADD,
    NODE_REMOVE,
    CLUSTER_UPGRADE,
    CLUSTER_DELETE,
    ETCD_BACKUP,
    ETCD_RESTORE,
    CLUSTER_CERT_RENEW,
    CIS_SCAN,
)
"""Every playbook a kobot step runs; each must exist in the playbooks directory kobot ships."""
