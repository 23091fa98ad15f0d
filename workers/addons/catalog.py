"""The addon catalog: one entry type for every addon, and the entries as data.

An entry says which chart (name and version in the site's chart repository), kobot's values for it,
which values a person may set from chat (each with a pattern and an example), the images it needs
mirrored, which workloads tell it is healthy, and the links and login hints to post. Wiring an addon
to kobot (Alertmanager's receiver, the cluster label) is done by its values function, from
`AddonInputs`, never by special cases in the job.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
class AddonInputs:
    """What kobot knows when it renders: the cluster, how the cluster reaches kobot, what a person set."""

    cluster: str
    user_values: dict[str, str]
    webhook_url: str | None = None
    webhook_token: str | None = None
    """kobot's Alertmanager webhook bearer token; it goes into the cluster's Secret, never to chat."""


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
            "additionalDataSources": [
                {
                    "name": "Loki",
                    "type": "loki",
                    "access": "proxy",
                    "url": "http://logging-loki-gateway.logging.svc",
                }
            ]
        },
    }


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
                "Grafana's admin password is in Secret monitoring/monitoring-grafana (key admin-password): "
                "read it with `kubectl -n monitoring get secret monitoring-grafana "
                "-o jsonpath='{.data.admin-password}' | base64 -d` on a machine with the cluster's "
                "kubeconfig, then change it in Grafana"
            ),
            aliases=("监控", "prometheus", "grafana"),
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
    )
}


def entry_named(name: str) -> AddonEntry:
    """The catalog entry by name or alias; unknown names are answered with the names there are."""
    lowered = name.strip().lower()
    for entry in CATALOG.values():
        if lowered == entry.name or lowered in entry.aliases:
            return entry
    raise KobotError(f"there is no addon {name!r}; the catalog has: {', '.join(sorted(CATALOG))}")
