"""The addon catalog: one entry type for every addon, and the entries as data.

An entry says which chart (name and version in the site's chart repository) or which of kobot's own
manifests (for what has no maintained chart), kobot's values for it, which values a person may set from
chat (each with a pattern and an example), the credentials it needs (kept encrypted in kobot's cluster
secrets, never in chat), the images it needs mirrored, which workloads tell it is healthy, and the links
and login hints to post. Wiring an addon to kobot (Alertmanager's receiver, the cluster label) is done
by its values function, from `AddonInputs`, never by special cases in the job.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kobot.clusters import ClusterRecord
from kobot.errors import KobotError
from workers.addons.defaults import USER_VALUE_MAX_CHARS

VALUE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*){0,7}")
"""A Helm value path as `--set` takes it (`auth.enabled`): what an app's values may name."""


@dataclass(frozen=True)
class UserValue:
    """A value a person may set from chat: `install storage-nfs server=nfs1 path=/exports on prod`."""

    name: str
    description: str
    pattern: str
    example: str
    required: bool = False

    def check(self, value: str) -> str:
        if len(value) > USER_VALUE_MAX_CHARS or not re.fullmatch(self.pattern, value):
            raise KobotError(f"{self.name}={value!r} is not valid: {self.description}, like {self.example}")
        return value


@dataclass(frozen=True)
class AddonSecret:
    """A credential an addon needs. It lives encrypted in kobot's cluster secrets under `store_name`;
    a generated one is made there once and reused by every upgrade, a site one is copied there from
    the setting addons.credentials (by `name`) at install, so chat never carries it."""

    name: str
    description: str
    generated: bool = False

    def store_name(self, addon: str) -> str:
        return f"addon/{addon}/{self.name}"


@dataclass(frozen=True)
class AddonInputs:
    """What kobot knows when it renders: the cluster, how the cluster reaches kobot, what a person set,
    and the addon's credentials (from kobot's encrypted store; they go into Secrets, never to chat)."""

    cluster: str
    user_values: dict[str, str]
    webhook_url: str | None = None
    webhook_token: str | None = None
    """kobot's Alertmanager webhook bearer token; it goes into the cluster's Secret, never to chat."""
    secrets: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Link:
    title: str
    service: str
    port: int
    how: str = ""


@dataclass(frozen=True)
class AddonEntry:
    name: str
    summary: str
    chart: str
    version: str
    namespace: str
    values: Callable[[AddonInputs], dict[str, Any]]
    images: tuple[str, ...]
    settable: tuple[UserValue, ...] = ()
    healthy: tuple[str, ...] = ()
    """`Kind/name` of workloads (release-relative names are formatted with {release}) that must be ready."""
    links: tuple[Link, ...] = ()
    login: str = ""
    aliases: tuple[str, ...] = field(default=())
    own_namespace: bool = True
    """The addon's namespace is created and owned by its release (false for kube-system)."""
    app: bool = False
    """Built from the chart repository's index (the app store), not the catalog: any value path may be
    set (checked for shape), every image the render names is mirrored, its workloads tell health."""
    own_manifests: str = ""
    """A file of workers/addons/own_manifests rendered instead of a chart (`chart` is then empty)."""
    secrets: tuple[AddonSecret, ...] = ()
    objects: Callable[[AddonInputs], list[dict[str, Any]]] | None = None
    """Objects kobot adds to the render: Secrets built from `secrets` (so credentials never pass
    through Helm values) and what the chart lacks (the GPU RuntimeClass)."""
    refuses: Callable[[ClusterRecord], str | None] | None = None
    """Why the addon cannot serve this cluster (said before any job), or None."""

    @property
    def source(self) -> str:
        """What it is made from, for chat: `chart 1.2.3` or kobot's own manifests."""
        if self.own_manifests:
            return f"kobot's own manifests ({self.version})"
        return f"{self.chart} {self.version}"

    @property
    def release(self) -> str:
        return self.name

    def checked_values(self, given: dict[str, str]) -> dict[str, str]:
        """The person's values, validated; unknown names and missing required ones are refused."""
        if self.app:
            bad = [k for k, v in given.items() if not VALUE_KEY.fullmatch(k) or len(v) > USER_VALUE_MAX_CHARS]
            if bad:
                raise KobotError(
                    f"cannot set {', '.join(sorted(bad))}: say --set key=value, like --set a.b=1"
                )
            return dict(given)
        allowed = {value.name: value for value in self.settable}
        unknown = sorted(set(given) - set(allowed))
        if unknown:
            names = ", ".join(sorted(allowed)) or "none"
            raise KobotError(f"{self.name} has no setting {', '.join(unknown)} (settable: {names})")
        missing = [v.name for v in self.settable if v.required and v.name not in given]
        if missing:
            example = " ".join(f"{v.name}={v.example}" for v in self.settable if v.required)
            raise KobotError(
                f"{self.name} needs {', '.join(missing)}: `install {self.name} {example} on <cluster>`"
            )
        return {name: allowed[name].check(value) for name, value in given.items()}


def _monitoring(inputs: AddonInputs) -> dict[str, Any]:
    if not inputs.webhook_url or not inputs.webhook_token:
        raise KobotError(
            "monitoring sends its alerts to kobot, so kobot needs addons.kobot_webhook_url "
            "(KOBOT_ADDONS__KOBOT_WEBHOOK_URL) and alerts.webhook_bearer_token set first"
        )
    retention = inputs.user_values.get("retention", "15d")
    kobot = {
        "name": "kobot",
        "webhook_configs": [
            {
                "url": inputs.webhook_url,
                "send_resolved": True,
                "http_config": {"authorization": {"type": "Bearer", "credentials": inputs.webhook_token}},
            }
        ],
    }
    return {
        # the webhook patch jobs need an extra image and a hook run; the operator works without them
        "prometheusOperator": {"admissionWebhooks": {"enabled": False}},
        "prometheus": {
            "prometheusSpec": {"externalLabels": {"cluster": inputs.cluster}, "retention": retention}
        },
        "alertmanager": {
            "config": {
                "global": {"resolve_timeout": "5m"},
                "route": {
                    "receiver": "kobot",
                    "group_by": ["alertname", "cluster", "namespace"],
                    "group_wait": "30s",
                    "group_interval": "5m",
                    "repeat_interval": "4h",
                    "routes": [{"matchers": ['alertname = "Watchdog"'], "receiver": "null"}],
                },
                "receivers": [kobot, {"name": "null"}],
            }
        },
        "grafana": {
            **_grafana_admin(inputs),
            "additionalDataSources": [
                {
                    "name": "Loki",
                    "type": "loki",
                    "access": "proxy",
                    "url": "http://logging-loki-gateway.logging.svc",
                }
            ],
        },
    }


GRAFANA_ADMIN = AddonSecret("grafana-admin-password", "Grafana's admin password", generated=True)


def _grafana_admin(inputs: AddonInputs) -> dict[str, str]:
    """The password kobot made once and keeps encrypted (the chart would draw a new one each render).
    Renders that only list images (the offline bundle, the benchmark) have none, and need none."""
    password = inputs.secrets.get(GRAFANA_ADMIN.name)
    return {"adminPassword": password} if password else {}


def _logging(inputs: AddonInputs) -> dict[str, Any]:
    # single binary on the filesystem: what the chart accepts without object storage
    return {
        "deploymentMode": "SingleBinary",
        "loki": {
            "useTestSchema": True,
            "storage": {"type": "filesystem"},
            "commonConfig": {"replication_factor": 1},
            "auth_enabled": False,
        },
        "singleBinary": {"replicas": 1},
        "read": {"replicas": 0},
        "write": {"replicas": 0},
        "backend": {"replicas": 0},
        "chunksCache": {"enabled": False},
        "resultsCache": {"enabled": False},
        "lokiCanary": {"enabled": False},
        "test": {"enabled": False},
        "minio": {"enabled": False},
    }


def _dashboard(inputs: AddonInputs) -> dict[str, Any]:
    return {}


def _storage_nfs(inputs: AddonInputs) -> dict[str, Any]:
    return {
        "nfs": {"server": inputs.user_values["server"], "path": inputs.user_values["path"]},
        "storageClass": {"name": "nfs-client", "defaultClass": False},
    }


def _scope(inputs: AddonInputs) -> dict[str, Any]:
    return {}


GPU_RUNTIME_CLASS = "nvidia"
"""The containerd runtime kobot configures on GPU nodes (playbooks' containerd role) and its RuntimeClass."""

GPU_NODE_LABEL = "kobot.io/gpu"
"""The label kobot puts on GPU nodes (playbooks' post role); the device plugin runs only there."""


def _gpu(inputs: AddonInputs) -> dict[str, Any]:
    return {
        # kobot labels GPU nodes itself; the chart's default affinity waits for NFD labels kobot has not
        "nodeSelector": {GPU_NODE_LABEL: "true"},
        "affinity": {"nodeAffinity": None},  # null drops the chart's default, as with `helm --set`
        "runtimeClassName": GPU_RUNTIME_CLASS,
        "gfd": {"enabled": False},
        "nfd": {"enabled": False},
    }


def _without_gpu_nodes(record: ClusterRecord) -> str | None:
    if any(node.gpu for node in record.nodes):
        return None
    return (
        f"{record.name} has no GPU workers, so the device plugin would run nowhere: add them with "
        f"`scale workers N gpu_workers=M on {record.name}` or `add node {record.name} host=ADDRESS --gpu`"
    )


def _gpu_objects(inputs: AddonInputs) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "node.k8s.io/v1",
            "kind": "RuntimeClass",
            "metadata": {"name": GPU_RUNTIME_CLASS},
            "handler": GPU_RUNTIME_CLASS,
        }
    ]


F5_LOGIN_SECRET = "f5-bigip-ctlr-login"  # nosec B105  # a Secret's name, not its value
BIGIP_USERNAME = AddonSecret("bigip-username", "the BIG-IP user the controller logs in as")
BIGIP_PASSWORD = AddonSecret("bigip-password", "that user's password")
F5_MODES = ("nodeport", "cluster", "nodeportlocal")
"""CIS pool member types: through each node's NodePort, or straight to pod addresses."""


def _f5(inputs: AddonInputs) -> dict[str, Any]:
    given = inputs.user_values
    return {
        "bigip_login_secret": F5_LOGIN_SECRET,
        "bigip_secret": {"create": False},
        # Traefik stays the cluster's default IngressClass; F5 serves what names class f5
        "ingressClass": {"create": True, "ingressClassName": "f5", "isDefaultIngressController": False},
        "namespace": "kube-system",
        "args": {
            "bigip_url": given["bigip"],
            "bigip_partition": given["partition"],
            "pool_member_type": given.get("mode", "nodeport"),
            "insecure": given.get("insecure", "false") == "true",
        },
        "version": F5_CONTROLLER_VERSION,
    }


F5_CONTROLLER_VERSION = "2.20.1"
"""The controller image the chart would otherwise take as `latest` (not reproducible, not mirrorable)."""


def _f5_objects(inputs: AddonInputs) -> list[dict[str, Any]]:
    return [
        _opaque_secret(
            F5_LOGIN_SECRET,
            {
                "username": inputs.secrets[BIGIP_USERNAME.name],
                "password": inputs.secrets[BIGIP_PASSWORD.name],
            },
        )
    ]


CEPH_SECRET = "csi-rbd-secret"  # nosec B105  # a Secret's name, not its value
CEPH_USER_ID = AddonSecret("ceph-user-id", "the Ceph user (without `client.`) with access to the pool")
CEPH_USER_KEY = AddonSecret("ceph-user-key", "that user's key (`ceph auth get-key client.USER`)")


def _ceph_rbd(inputs: AddonInputs) -> dict[str, Any]:
    given = inputs.user_values
    cluster_id = given["cluster_id"]
    return {
        "csiConfig": [{"clusterID": cluster_id, "monitors": given["monitors"].split(",")}],
        "storageClass": {
            "create": True,
            "name": "ceph-rbd",
            "clusterID": cluster_id,
            "pool": given["pool"],
            "provisionerSecret": CEPH_SECRET,
            "controllerExpandSecret": CEPH_SECRET,
            "nodeStageSecret": CEPH_SECRET,
        },
        # kobot applies the Secret itself, from its encrypted store: the key never passes through values
        "secret": {"create": False, "name": CEPH_SECRET},
        "provisioner": {"replicaCount": 1},
    }


def _ceph_rbd_objects(inputs: AddonInputs) -> list[dict[str, Any]]:
    return [
        _opaque_secret(
            CEPH_SECRET,
            {"userID": inputs.secrets[CEPH_USER_ID.name], "userKey": inputs.secrets[CEPH_USER_KEY.name]},
        )
    ]


CINDER_SECRET = "cinder-csi-cloud-config"  # nosec B105  # a Secret's name, not its value
OPENSTACK_CREDENTIAL_ID = AddonSecret("openstack-credential-id", "an OpenStack application credential ID")
OPENSTACK_CREDENTIAL_SECRET = AddonSecret(
    "openstack-credential-secret", "that application credential's secret"
)


def _cinder(inputs: AddonInputs) -> dict[str, Any]:
    return {
        "secret": {"enabled": True, "create": False, "name": CINDER_SECRET, "hostMount": False},
        "storageClass": {"enabled": True, "delete": {"isDefault": False}, "retain": {"isDefault": False}},
    }


def _cinder_objects(inputs: AddonInputs) -> list[dict[str, Any]]:
    given = inputs.user_values
    cloud = "\n".join(
        (
            "[Global]",
            f"auth-url={given['auth_url']}",
            f"region={given['region']}",
            f"application-credential-id={inputs.secrets[OPENSTACK_CREDENTIAL_ID.name]}",
            f"application-credential-secret={inputs.secrets[OPENSTACK_CREDENTIAL_SECRET.name]}",
            "",
        )
    )
    return [_opaque_secret(CINDER_SECRET, {"cloud.conf": cloud})]


def _opaque_secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "stringData": data,
    }


CATALOG: dict[str, AddonEntry] = {
    entry.name: entry
    for entry in (
        AddonEntry(
            name="monitoring",
            summary="Prometheus, Alertmanager (alerts to kobot), Grafana, node-exporter, kube-state-metrics",
            chart="kube-prometheus-stack",
            version="88.5.3",
            namespace="monitoring",
            values=_monitoring,
            images=(
                "quay.io/prometheus-operator/prometheus-operator:v0.93.1",
                "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1",
                "quay.io/prometheus/prometheus:v3.14.0-distroless",
                "quay.io/prometheus/alertmanager:v0.34.0",
                "quay.io/prometheus/node-exporter:v1.12.1-distroless",
                "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0",
                "docker.io/grafana/grafana:13.2.0",
                "quay.io/kiwigrid/k8s-sidecar:2.10.1",
                # named only in an operator flag (the default Thanos sidecar), not in an `image` field
                "quay.io/thanos/thanos:v0.42.4",
            ),
            settable=(
                UserValue("retention", "how long Prometheus keeps samples", r"[1-9][0-9]{0,3}[hdw]", "15d"),
            ),
            healthy=(
                "Deployment/{release}-kube-prometheus-operator",
                "Deployment/{release}-grafana",
                "Deployment/{release}-kube-state-metrics",
                "DaemonSet/{release}-prometheus-node-exporter",
            ),
            links=(
                Link("Grafana", "monitoring-grafana", 80),
                Link("Prometheus", "monitoring-kube-prometheus-prometheus", 9090),
                Link("Alertmanager", "monitoring-kube-prometheus-alertmanager", 9093),
            ),
            login=(
                "Grafana's admin password was made once by kobot and is kept encrypted in kobot's "
                f"cluster secrets ({GRAFANA_ADMIN.store_name('monitoring')}), so upgrades keep it; "
                "the cluster holds it in Secret monitoring/monitoring-grafana (key admin-password): "
                "read it with `kubectl -n monitoring get secret monitoring-grafana "
                "-o jsonpath='{.data.admin-password}' | base64 -d` on a machine with the cluster's "
                "kubeconfig, never in a chat"
            ),
            aliases=("监控", "prometheus", "grafana"),
            secrets=(GRAFANA_ADMIN,),
        ),
        AddonEntry(
            name="logging",
            summary="Loki (single binary, filesystem storage) for logs; Grafana's Loki data source",
            chart="loki",
            version="18.11.0",
            namespace="logging",
            values=_logging,
            images=(
                "docker.io/grafana/loki:3.7.6",
                "docker.io/kiwigrid/k8s-sidecar:2.10.1",
                "docker.io/nginxinc/nginx-unprivileged:1.31-alpine",
                "ghcr.io/jkroepke/access-log-exporter:0.4.11",
            ),
            healthy=("StatefulSet/{release}-loki",),
            links=(Link("Loki gateway", "logging-loki-gateway", 80),),
            aliases=("日志", "loki"),
        ),
        AddonEntry(
            name="dashboard",
            summary="The Kubernetes Dashboard",
            chart="kubernetes-dashboard",
            version="7.13.0",
            namespace="kubernetes-dashboard",
            values=_dashboard,
            images=(
                "docker.io/kubernetesui/dashboard-api:1.13.0",
                "docker.io/kubernetesui/dashboard-auth:1.3.0",
                "docker.io/kubernetesui/dashboard-metrics-scraper:1.2.2",
                "docker.io/kubernetesui/dashboard-web:1.7.0",
                "kong:3.8",
            ),
            links=(Link("Dashboard", "dashboard-kong-proxy", 443),),
            login="log in with a ServiceAccount token: `kubectl -n NAMESPACE create token ACCOUNT`",
            aliases=("仪表盘", "控制台"),
        ),
        AddonEntry(
            name="storage-nfs",
            summary="A StorageClass (nfs-client) backed by an existing NFS export",
            chart="nfs-subdir-external-provisioner",
            version="4.0.18",
            namespace="kube-system",
            values=_storage_nfs,
            images=("registry.k8s.io/sig-storage/nfs-subdir-external-provisioner:v4.0.2",),
            settable=(
                UserValue(
                    "server",
                    "the NFS server's address or DNS name",
                    r"[A-Za-z0-9][A-Za-z0-9.:-]*",
                    "nfs1",
                    True,
                ),
                UserValue("path", "the exported directory, absolute", r"/[A-Za-z0-9._/-]*", "/exports", True),
            ),
            healthy=("Deployment/{release}-nfs-subdir-external-provisioner",),
            aliases=("nfs", "存储", "nfs存储"),
            own_namespace=False,
        ),
        AddonEntry(
            name="scope",
            summary="Weave Scope 1.13.2 (its last release): a live map of the cluster's workloads, read-only",
            chart="",
            version="1.13.2",
            namespace="weave",
            values=_scope,
            own_manifests="scope.yaml",
            images=("docker.io/weaveworks/scope:1.13.2",),
            healthy=(
                "Deployment/weave-scope-app",
                "Deployment/weave-scope-cluster-agent",
                "DaemonSet/weave-scope-agent",
            ),
            links=(Link("Scope", "weave-scope-app", 80),),
            login="Scope has no login of its own: reach it only by port-forward; its controls are off",
            aliases=("weave-scope", "weave", "拓扑", "scope拓扑"),
        ),
        AddonEntry(
            name="gpu",
            summary="The NVIDIA device plugin on kobot's GPU nodes and the `nvidia` RuntimeClass",
            chart="nvidia-device-plugin",
            version="0.20.0",
            namespace="nvidia-device-plugin",
            values=_gpu,
            objects=_gpu_objects,
            refuses=_without_gpu_nodes,
            images=("nvcr.io/nvidia/k8s-device-plugin:v0.20.0",),
            healthy=("DaemonSet/{release}-nvidia-device-plugin",),
            aliases=("nvidia", "gpu-device-plugin", "显卡", "gpu插件"),
        ),
        AddonEntry(
            name="f5",
            summary="The F5 BIG-IP Container Ingress Services controller: Services and Ingresses on a BIG-IP",
            chart="f5-bigip-ctlr",
            version="0.0.35",
            namespace="kube-system",
            values=_f5,
            objects=_f5_objects,
            secrets=(BIGIP_USERNAME, BIGIP_PASSWORD),
            images=(f"f5networks/k8s-bigip-ctlr:{F5_CONTROLLER_VERSION}",),
            settable=(
                UserValue(
                    "bigip",
                    "the BIG-IP management URL, https",
                    r"https://[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?/?",
                    "https://bigip1.example.com",
                    True,
                ),
                UserValue(
                    "partition",
                    "the BIG-IP partition the controller manages (not Common)",
                    r"(?!Common$)[A-Za-z][A-Za-z0-9_-]{0,63}",
                    "kubernetes",
                    True,
                ),
                UserValue(
                    "mode", f"the pool member type: {', '.join(F5_MODES)}", "|".join(F5_MODES), "nodeport"
                ),
                UserValue("insecure", "true to skip the BIG-IP's certificate check", r"true|false", "false"),
            ),
            healthy=("Deployment/{release}-f5-bigip-ctlr",),
            login=(
                "the BIG-IP login comes from addons.credentials (bigip-username, bigip-password) and "
                "is kept encrypted in kobot's cluster secrets; the cluster holds it in Secret "
                f"kube-system/{F5_LOGIN_SECRET}"
            ),
            aliases=("f5-bigip", "bigip", "big-ip", "cis", "负载均衡f5"),
            own_namespace=False,
        ),
        AddonEntry(
            name="storage-ceph-rbd",
            summary="A StorageClass (ceph-rbd) on an existing Ceph cluster's RBD pool (ceph-csi)",
            chart="ceph-csi-rbd",
            version="3.17.1",
            namespace="ceph-csi-rbd",
            values=_ceph_rbd,
            objects=_ceph_rbd_objects,
            secrets=(CEPH_USER_ID, CEPH_USER_KEY),
            images=(
                "quay.io/cephcsi/cephcsi:v3.17.1",
                "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.16.0",
                "registry.k8s.io/sig-storage/csi-provisioner:v6.2.0",
                "registry.k8s.io/sig-storage/csi-attacher:v4.11.0",
                "registry.k8s.io/sig-storage/csi-resizer:v2.1.0",
                "registry.k8s.io/sig-storage/csi-snapshotter:v8.5.0",
            ),
            settable=(
                UserValue(
                    "cluster_id",
                    "the Ceph cluster's fsid (`ceph fsid`)",
                    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                    "b9127830-b0cc-4e34-aa47-9d1a2e9949a8",
                    True,
                ),
                UserValue(
                    "monitors",
                    "the Ceph monitors, host:port, comma separated",
                    r"[A-Za-z0-9][A-Za-z0-9.-]*:[0-9]{1,5}(,[A-Za-z0-9][A-Za-z0-9.-]*:[0-9]{1,5}){0,8}",
                    "ceph1:6789,ceph2:6789",
                    True,
                ),
                UserValue(
                    "pool",
                    "the RBD pool volumes are made in",
                    r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
                    "kubernetes",
                    True,
                ),
            ),
            healthy=(
                "Deployment/{release}-ceph-csi-rbd-provisioner",
                "DaemonSet/{release}-ceph-csi-rbd-nodeplugin",
            ),
            aliases=("ceph-rbd", "ceph", "rbd", "ceph存储"),
        ),
        AddonEntry(
            name="storage-cinder",
            summary="StorageClasses on OpenStack Cinder (the cinder CSI plugin)",
            chart="openstack-cinder-csi",
            version="2.36.0",
            namespace="cinder-csi",
            values=_cinder,
            objects=_cinder_objects,
            secrets=(OPENSTACK_CREDENTIAL_ID, OPENSTACK_CREDENTIAL_SECRET),
            images=(
                "registry.k8s.io/provider-os/cinder-csi-plugin:v1.36.0",
                "registry.k8s.io/sig-storage/csi-attacher:v4.10.0",
                "registry.k8s.io/sig-storage/csi-provisioner:v5.3.0",
                "registry.k8s.io/sig-storage/csi-snapshotter:v8.4.0",
                "registry.k8s.io/sig-storage/csi-resizer:v1.14.0",
                "registry.k8s.io/sig-storage/livenessprobe:v2.17.0",
                "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.15.0",
            ),
            settable=(
                UserValue(
                    "auth_url",
                    "the Keystone URL, http(s)",
                    r"https?://[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?(/[A-Za-z0-9._/-]*)?",
                    "https://keystone.example.com:5000/v3",
                    True,
                ),
                UserValue(
                    "region", "the OpenStack region", r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", "RegionOne", True
                ),
            ),
            healthy=(
                "Deployment/openstack-cinder-csi-controllerplugin",
                "DaemonSet/openstack-cinder-csi-nodeplugin",
            ),
            aliases=("cinder", "openstack-cinder", "cinder存储"),
        ),
    )
}


def entry_named(name: str) -> AddonEntry:
    """The catalog entry by name or alias; unknown names are answered with the names there are."""
    lowered = name.strip().lower()
    for entry in CATALOG.values():
        if lowered == entry.name or lowered in entry.aliases:
            return entry
    raise KobotError(f"there is no addon {name!r}; the catalog has: {', '.join(sorted(CATALOG))}")
