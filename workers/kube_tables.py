"""The kinds chat `kubectl` may read (the allow-list) and how their API JSON becomes compact text.

Pure functions over the API's JSON: no client, no I/O, so the formatting is tested on plain dicts.
Columns follow kubectl's own for each kind, shortened where a chat line is narrow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kobot import defaults


@dataclass(frozen=True)
class ResourceKind:
    plural: str
    singular: str
    kind: str
    api: str
    """Path prefix of its group version: `/api/v1`, `/apis/apps/v1`."""
    namespaced: bool
    names: tuple[str, ...] = ()
    """Other words for it: kubectl's short names and 中文."""
    hides_data: bool = False
    """Secrets and ConfigMaps: their values are never shown."""

    def list_path(self, namespace: str | None) -> str:
        if self.namespaced and namespace is not None:
            return f"{self.api}/namespaces/{namespace}/{self.plural}"
        return f"{self.api}/{self.plural}"

    def item_path(self, namespace: str | None, name: str) -> str:
        return f"{self.list_path(namespace)}/{name}"


RESOURCES: tuple[ResourceKind, ...] = (
    ResourceKind("pods", "pod", "Pod", "/api/v1", True, ("po", "容器组", "pod列表")),
    ResourceKind("nodes", "node", "Node", "/api/v1", False, ("no", "节点", "主机节点")),
    ResourceKind("namespaces", "namespace", "Namespace", "/api/v1", False, ("ns", "命名空间")),
    ResourceKind("services", "service", "Service", "/api/v1", True, ("svc", "服务")),
    ResourceKind("deployments", "deployment", "Deployment", "/apis/apps/v1", True, ("deploy", "部署")),
    ResourceKind("statefulsets", "statefulset", "StatefulSet", "/apis/apps/v1", True, ("sts", "有状态")),
    ResourceKind("daemonsets", "daemonset", "DaemonSet", "/apis/apps/v1", True, ("ds", "守护进程集")),
    ResourceKind("replicasets", "replicaset", "ReplicaSet", "/apis/apps/v1", True, ("rs",)),
    ResourceKind("jobs", "job", "Job", "/apis/batch/v1", True, ()),
    ResourceKind("cronjobs", "cronjob", "CronJob", "/apis/batch/v1", True, ("cj", "定时任务")),
    ResourceKind("ingresses", "ingress", "Ingress", "/apis/networking.k8s.io/v1", True, ("ing",)),
    ResourceKind(
        "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", "/api/v1", True, ("pvc",)
    ),
    ResourceKind("persistentvolumes", "persistentvolume", "PersistentVolume", "/api/v1", False, ("pv",)),
    ResourceKind("events", "event", "Event", "/api/v1", True, ("ev", "事件")),
    ResourceKind("configmaps", "configmap", "ConfigMap", "/api/v1", True, ("cm", "配置"), hides_data=True),
    ResourceKind("secrets", "secret", "Secret", "/api/v1", True, ("密钥",), hides_data=True),
)

_BY_WORD = {
    word.lower(): kind for kind in RESOURCES for word in (kind.plural, kind.singular, kind.kind, *kind.names)
}


def resolve_resource(word: str) -> ResourceKind:
    """The allowed kind a word names (`po`, `deploy`, `节点`, `Deployment`); others are refused by name."""
    kind = _BY_WORD.get(word.strip().lower())
    if kind is None:
        raise ValueError(f"'{word}' is not a kind kobot reads; allowed: {allowed_text()}")
    return kind


def allowed_text() -> str:
    return ", ".join(kind.plural for kind in RESOURCES)


# --- tables ------------------------------------------------------------------------------------------
def table(kind: ResourceKind, items: list[dict[str, Any]], *, wide: bool, all_namespaces: bool) -> list[str]:
    """Aligned rows with a header, like `kubectl get`."""
    header, rows = _columns(kind, items, wide=wide)
    if all_namespaces:
        header = ["NAMESPACE", *header]
        rows = [[_meta(item, "namespace"), *row] for item, row in zip(items, rows, strict=True)]
    return aligned([header, *rows])


def aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows else []
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _columns(
    kind: ResourceKind, items: list[dict[str, Any]], *, wide: bool
) -> tuple[list[str], list[list[str]]]:
    if kind.plural == "pods":
        header = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] + (["IP", "NODE"] if wide else [])
        return header, [_pod_row(item, wide=wide) for item in items]
    if kind.plural == "nodes":
        header = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"] + (["INTERNAL-IP", "OS-IMAGE"] if wide else [])
        return header, [_node_row(item, wide=wide) for item in items]
    if kind.plural in ("deployments", "statefulsets"):
        return ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], [_deploy_row(item) for item in items]
    if kind.plural == "daemonsets":
        header = ["NAME", "DESIRED", "CURRENT", "READY", "AVAILABLE", "AGE"]
        return header, [_daemonset_row(item) for item in items]
    if kind.plural == "services":
        header = ["NAME", "TYPE", "CLUSTER-IP", "PORTS", "AGE"]
        return header, [_service_row(item) for item in items]
    if kind.plural == "events":
        return ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], [_event_cells(item) for item in items]
    if kind.plural == "secrets":
        return ["NAME", "TYPE", "KEYS", "AGE"], [
            [_meta(i, "name"), str(i.get("type") or ""), str(len(i.get("data") or {})), _age(i)]
            for i in items
        ]
    if kind.plural == "configmaps":
        return ["NAME", "KEYS", "AGE"], [
            [_meta(i, "name"), str(len(i.get("data") or {}) + len(i.get("binaryData") or {})), _age(i)]
            for i in items
        ]
    if kind.plural in ("persistentvolumeclaims", "persistentvolumes", "namespaces"):
        return ["NAME", "STATUS", "AGE"], [
            [_meta(i, "name"), str((i.get("status") or {}).get("phase") or ""), _age(i)] for i in items
        ]
    return ["NAME", "AGE"], [[_meta(i, "name"), _age(i)] for i in items]


def _pod_row(item: dict[str, Any], *, wide: bool) -> list[str]:
    status = item.get("status") or {}
    containers = status.get("containerStatuses") or []
    declared = len((item.get("spec") or {}).get("containers") or []) or len(containers)
    ready = sum(1 for c in containers if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in containers)
    row = [_meta(item, "name"), f"{ready}/{declared}", pod_phase(item), str(restarts), _age(item)]
    if wide:
        row += [
            str(status.get("podIP") or "<none>"),
            str((item.get("spec") or {}).get("nodeName") or "<none>"),
        ]
    return row


def pod_phase(item: dict[str, Any]) -> str:
    """What kubectl shows as STATUS: a waiting or terminated reason beats the phase."""
    if (item.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    status = item.get("status") or {}
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        for key in ("waiting", "terminated"):
            reason = (state.get(key) or {}).get("reason")
            if reason and reason != "Completed":
                return str(reason)
    return str(status.get("phase") or "Unknown")


def _node_row(item: dict[str, Any], *, wide: bool) -> list[str]:
    status = item.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    state = "Ready" if ready else "NotReady"
    if (item.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = _meta_map(item, "labels")
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    info = status.get("nodeInfo") or {}
    row = [
        _meta(item, "name"),
        state,
        ",".join(roles) or "<none>",
        _age(item),
        str(info.get("kubeletVersion") or ""),
    ]
    if wide:
        internal = next(
            (a.get("address") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"),
            "<none>",
        )
        row += [str(internal), str(info.get("osImage") or "")]
    return row


def _deploy_row(item: dict[str, Any]) -> list[str]:
    spec, status = item.get("spec") or {}, item.get("status") or {}
    return [
        _meta(item, "name"),
        f"{status.get('readyReplicas') or 0}/{spec.get('replicas') or 0}",
        str(status.get("updatedReplicas") or 0),
        str(status.get("availableReplicas") or 0),
        _age(item),
    ]


def _daemonset_row(item: dict[str, Any]) -> list[str]:
    status = item.get("status") or {}
    keys = ("desiredNumberScheduled", "currentNumberScheduled", "numberReady", "numberAvailable")
    return [_meta(item, "name"), *(str(status.get(k) or 0) for k in keys), _age(item)]


def _service_row(item: dict[str, Any]) -> list[str]:
    spec = item.get("spec") or {}
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    return [
        _meta(item, "name"),
        str(spec.get("type") or ""),
        str(spec.get("clusterIP") or ""),
        ports or "<none>",
        _age(item),
    ]


# --- events ------------------------------------------------------------------------------------------
def event_time(item: dict[str, Any]) -> str:
    return str(item.get("lastTimestamp") or item.get("eventTime") or _meta(item, "creationTimestamp") or "")


def _event_cells(item: dict[str, Any]) -> list[str]:
    involved = item.get("involvedObject") or {}
    return [
        _since(event_time(item)),
        str(item.get("type") or ""),
        str(item.get("reason") or ""),
        f"{str(involved.get('kind') or '').lower()}/{involved.get('name') or ''}",
        " ".join(str(item.get("message") or "").split()),
    ]


def event_lines(items: list[dict[str, Any]], *, all_namespaces: bool) -> list[str]:
    """One line per event, oldest first; not column-aligned, since messages vary so much in length."""
    lines = []
    for item in items:
        cells = _event_cells(item)
        if all_namespaces:
            cells.insert(0, _meta(item, "namespace"))
        lines.append("  ".join(cells))
    return lines


# --- top ---------------------------------------------------------------------------------------------
def top_lines(plural: str, items: list[dict[str, Any]], *, all_namespaces: bool) -> list[str]:
    rows: list[list[str]] = []
    for item in sorted(items, key=lambda i: (_meta(i, "namespace"), _meta(i, "name"))):
        if plural == "nodes":
            usage = item.get("usage") or {}
            rows.append([_meta(item, "name"), str(usage.get("cpu") or ""), str(usage.get("memory") or "")])
        else:
            containers = item.get("containers") or []
            cpu = sum(_millicores(str((c.get("usage") or {}).get("cpu") or "0")) for c in containers)
            memory = sum(_mebibytes(str((c.get("usage") or {}).get("memory") or "0")) for c in containers)
            row = [_meta(item, "name"), f"{cpu}m", f"{memory}Mi"]
            rows.append([_meta(item, "namespace"), *row] if all_namespaces else row)
    header = ["NAME", "CPU", "MEMORY"]
    if plural == "pods" and all_namespaces:
        header = ["NAMESPACE", *header]
    return aligned([header, *rows]) if rows else []


def _millicores(quantity: str) -> int:
    if quantity.endswith("n"):
        return int(float(quantity[:-1]) / 1_000_000)
    if quantity.endswith("u"):
        return int(float(quantity[:-1]) / 1_000)
    if quantity.endswith("m"):
        return int(float(quantity[:-1]))
    return int(float(quantity) * 1000)


_BINARY = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}


def _mebibytes(quantity: str) -> int:
    for suffix, factor in _BINARY.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor)
    return int(float(quantity) / (1024 * 1024))


# --- describe ----------------------------------------------------------------------------------------
def describe(kind: ResourceKind, item: dict[str, Any]) -> list[str]:
    """The facts `kubectl describe` leads with; data of Secrets and ConfigMaps by key name only."""
    metadata = item.get("metadata") or {}
    lines = [f"Name: {metadata.get('name')}"]
    if kind.namespaced:
        lines.append(f"Namespace: {metadata.get('namespace')}")
    labels = metadata.get("labels") or {}
    lines.append("Labels: " + (", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"))
    lines.append(f"Created: {metadata.get('creationTimestamp')} ({_age(item)} ago)")
    if kind.hides_data:
        keys = sorted({*(item.get("data") or {}), *(item.get("binaryData") or {})})
        lines.append("Keys: " + (", ".join(keys) or "<none>") + " (values hidden)")
    elif kind.plural == "pods":
        lines += _describe_pod(item)
    elif kind.plural == "nodes":
        lines += _describe_node(item)
    elif kind.plural in ("deployments", "statefulsets", "daemonsets", "replicasets"):
        spec, status = item.get("spec") or {}, item.get("status") or {}
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        lines.append("Selector: " + ",".join(f"{k}={v}" for k, v in sorted(selector.items())))
        lines.append(
            f"Replicas: {spec.get('replicas', '-')} desired, {status.get('readyReplicas') or 0} ready, "
            f"{status.get('availableReplicas') or 0} available"
        )
        for container in ((spec.get("template") or {}).get("spec") or {}).get("containers") or []:
            lines.append(f"Container {container.get('name')}: {container.get('image')}")
    return lines


def _describe_pod(item: dict[str, Any]) -> list[str]:
    spec, status = item.get("spec") or {}, item.get("status") or {}
    lines = [
        f"Node: {spec.get('nodeName') or '<none>'}",
        f"Status: {pod_phase(item)}",
        f"IP: {status.get('podIP') or '<none>'}",
    ]
    states = {c.get("name"): c for c in status.get("containerStatuses") or []}
    for container in spec.get("containers") or []:
        found = states.get(container.get("name")) or {}
        state = ", ".join(
            f"{key} ({(value or {}).get('reason') or ''})".replace(" ()", "")
            for key, value in (found.get("state") or {}).items()
        )
        lines.append(
            f"Container {container.get('name')}: {container.get('image')} · ready={bool(found.get('ready'))}"
            f" · restarts={found.get('restartCount') or 0} · {state or 'unknown'}"
        )
    for condition in status.get("conditions") or []:
        lines.append(f"Condition {condition.get('type')}: {condition.get('status')}")
    return lines


def _describe_node(item: dict[str, Any]) -> list[str]:
    status = item.get("status") or {}
    lines = [f"Unschedulable: {bool((item.get('spec') or {}).get('unschedulable'))}"]
    for condition in status.get("conditions") or []:
        reason = f" ({condition.get('reason')})" if condition.get("reason") else ""
        lines.append(f"Condition {condition.get('type')}: {condition.get('status')}{reason}")
    for address in status.get("addresses") or []:
        lines.append(f"Address {address.get('type')}: {address.get('address')}")
    capacity = status.get("capacity") or {}
    if capacity:
        lines.append("Capacity: " + ", ".join(f"{k}={v}" for k, v in sorted(capacity.items())))
    info = status.get("nodeInfo") or {}
    if info:
        lines.append(
            f"Kubelet: {info.get('kubeletVersion')} · {info.get('osImage')}"
            f" · {info.get('containerRuntimeVersion')}"
        )
    return lines


# --- small readers -----------------------------------------------------------------------------------
def _meta(item: dict[str, Any], key: str) -> str:
    return str((item.get("metadata") or {}).get(key) or "")


def _meta_map(item: dict[str, Any], key: str) -> dict[str, str]:
    found = (item.get("metadata") or {}).get(key) or {}
    return found if isinstance(found, dict) else {}


def _age(item: dict[str, Any]) -> str:
    return _since(_meta(item, "creationTimestamp"))


def _since(stamp: str) -> str:
    """`5m`, `3h`, `12d` since an API timestamp, as kubectl prints ages."""
    try:
        then = datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    seconds = max(int((datetime.now(UTC) - then).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def clip(line: str) -> str:
    """A line cut to the chat's width, saying it was cut."""
    limit = defaults.KUBECTL_LINE_CHARS_MAX
    return line if len(line) <= limit else line[: limit - 1] + "…"
