"""A local Kubernetes API server for the endpoints kobot uses, over a real loopback socket.

Drains: nodes, pods, policy/v1 evictions. Chat `kubectl`: namespaced lists with label and field
selectors and `limit`, single objects, pod logs (tailLines, container, previous), events, namespaces,
services, deployments, secrets and configmaps, the metrics API (metrics.k8s.io, switchable off to be
absent as without metrics-server), discovery (/api, /apis, /version), injected errors and slow answers.

It speaks the API's JSON (nodes, pods, policy/v1 evictions, Status errors) so the official
`kubernetes` client talks to it exactly as to a real API server, and it records every request.
A `LoopbackPeer` like the chat platforms' peers.
Pod disruption budgets behave like the real ones as far as an eviction sees them: an eviction that
would take a budget below zero is answered 429, and the budget recovers when the evicted pod is
gone (its replacement is assumed to start elsewhere, as a controller would do).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.peers.loopback import LOOPBACK, LoopbackPeer, Recording

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str | None
    body: Any


@dataclass
class PeerPod:
    namespace: str
    name: str
    node: str
    labels: dict[str, str]
    owner_kind: str | None
    mirror: bool
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    remove_at: float | None = None
    deleted_at: str | None = None
    phase: str = "Running"
    waiting_reason: str | None = None
    """`CrashLoopBackOff`, `ImagePullBackOff`: the container is not running."""
    restarts: int = 0
    containers: tuple[str, ...] = ("main",)
    logs: dict[str, list[str]] = field(default_factory=dict)
    """Container name → its log lines; `<name>/previous` holds the crashed container's."""
    cpu: str = "5m"
    memory: str = "32Mi"


@dataclass
class PeerEvent:
    namespace: str
    kind: str
    name: str
    reason: str
    message: str
    type: str = "Normal"
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    at: str = field(default_factory=lambda: _now())


@dataclass
class PeerBudget:
    namespace: str
    name: str
    match_labels: dict[str, str]
    disruptions_allowed: int

    def covers(self, pod: PeerPod) -> bool:
        return pod.namespace == self.namespace and all(
            pod.labels.get(key) == value for key, value in self.match_labels.items()
        )


SUPPORTED_POD_FIELDS = ("metadata.name", "metadata.namespace", "spec.nodeName", "status.phase")
SUPPORTED_EVENT_FIELDS = ("involvedObject.name", "involvedObject.kind", "type", "reason")
METRICS = ("apis", "metrics.k8s.io", "v1beta1")
IMAGE = "registry.local/app:1"


CERTIFICATE_DAYS = 2
"""Validity of a TLS peer's self-signed certificate: longer than any test session."""


def _self_signed_loopback_certificate() -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for 127.0.0.1, its own CA, as a kubeadm API server's would verify."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=CERTIFICATE_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 429: "TooManyRequests"}
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _requirements(selector: str, *, fields: tuple[str, ...] | None) -> list[tuple[str, str, str | None]]:
    """`a=b,c!=d,e,!f` as (key, operator, value); set-based forms are refused as unsupported here."""
    found: list[tuple[str, str, str | None]] = []
    for part in (p.strip() for p in selector.split(",") if p.strip()):
        for operator in ("!=", "==", "="):
            if operator in part:
                key, _, value = part.partition(operator)
                found.append((key.strip(), "!=" if operator == "!=" else "=", value.strip()))
                break
        else:
            if fields is not None or " " in part or "(" in part:
                raise ValueError(f"unable to parse requirement: {part}")
            found.append((part.lstrip("!"), "absent" if part.startswith("!") else "exists", None))
    for key, _, _ in found:
        if fields is not None and key not in fields:
            raise ValueError(f'field label not supported: "{key}"')
    return found


def _matches(requirements: list[tuple[str, str, str | None]], values: dict[str, str]) -> bool:
    for key, operator, value in requirements:
        present = key in values
        if operator == "=" and values.get(key) != value:
            return False
        if operator == "!=" and values.get(key) == value:
            return False
        if (operator == "exists") != present and operator in ("exists", "absent"):
            return False
    return True


def _field_values(item: dict[str, Any]) -> dict[str, str]:
    metadata = item.get("metadata") or {}
    involved = item.get("involvedObject") or {}
    values = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "spec.nodeName": (item.get("spec") or {}).get("nodeName"),
        "status.phase": (item.get("status") or {}).get("phase"),
        "involvedObject.name": involved.get("name"),
        "involvedObject.kind": involved.get("kind"),
        "type": item.get("type"),
        "reason": item.get("reason"),
    }
    return {k: str(v) for k, v in values.items() if v is not None}


def _node_info(kubelet_version: str) -> dict[str, str]:
    """A node's status.nodeInfo: every field the API marks required, as a kubeadm node reports it."""
    return {
        "architecture": "amd64", "bootID": "00000000-0000-0000-0000-000000000001",
        "containerRuntimeVersion": "containerd://1.7.22", "kernelVersion": "5.14.0-427.el9.x86_64",
        "kubeProxyVersion": kubelet_version, "kubeletVersion": kubelet_version,
        "machineID": "0" * 32, "operatingSystem": "linux", "osImage": "Rocky Linux 9.4 (Blue Onyx)",
        "systemUUID": "00000000-0000-0000-0000-000000000002",
    }  # fmt: skip


def _version_info(git_version: str) -> dict[str, str]:
    """`GET /version` as an API server answers it."""
    major, minor, _ = git_version.lstrip("v").split(".", 2)
    return {
        "major": major, "minor": minor, "gitVersion": git_version, "gitCommit": "0" * 40,
        "gitTreeState": "clean", "buildDate": "2024-11-20T00:00:00Z", "goVersion": "go1.22.9",
        "compiler": "gc", "platform": "linux/amd64",
    }  # fmt: skip


def _status(code: int, reason: str, message: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    body.update(extra)
    return body


class KubernetesApiPeer(LoopbackPeer):
    """Nodes, pods and budgets in memory; `eviction_delay` is how long an evicted pod takes to go."""

    thread_name = "kube-peer"

    def __init__(self, *, eviction_delay: float = 0.05, tls: bool = False) -> None:
        super().__init__()
        self.token = secrets.token_urlsafe(24)
        self.tls = tls
        """Serve HTTPS with a certificate of its own: kubectl sends a token only over TLS."""
        self.ca_pem = b""
        """The certificate kubeconfigs trust (self-signed, for 127.0.0.1) once a TLS peer started."""
        self.eviction_delay = eviction_delay
        self._lock = threading.Lock()
        self._nodes: dict[str, dict[str, Any]] = {}
        self._pods: dict[tuple[str, str], PeerPod] = {}
        self._budgets: dict[tuple[str, str], PeerBudget] = {}
        self._requests: Recording[RecordedRequest] = Recording()
        self._events: list[PeerEvent] = []
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        """(plural, namespace, name) → JSON of deployments, services, secrets, configmaps."""
        self._applied: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        """(group/version, plural, namespace or "", name) → objects server-side applied outside `_objects`:
        cluster-scoped ones, RBAC, CRDs and custom resources."""
        self._held_not_ready: set[tuple[str, str, str]] = set()
        """(plural, namespace, name) of workloads that report no ready replicas until `let_ready`."""
        self.metrics_available = True
        self.server_version = "v1.30.2"
        """What `GET /version` answers as gitVersion, and a new node's kubelet version by default."""

    # --- lifecycle ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.origin

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    def tls_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        self.ca_pem, key_pem = _self_signed_loopback_certificate()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as scratch:
            # ssl loads a chain from files only; the key lives on disk just long enough to load it
            cert_file, key_file = Path(scratch) / "tls.crt", Path(scratch) / "tls.key"
            cert_file.write_bytes(self.ca_pem)
            key_file.write_bytes(key_pem)
            context.load_cert_chain(cert_file, key_file)
        return context

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig with this peer's URL and bearer token, as an admin.conf would be."""
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "peer", "cluster": self._cluster_entry()}],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "admin@peer", "context": {"cluster": "peer", "user": "admin"}}],
            "current-context": "admin@peer",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document))
        path.chmod(0o600)
        return path

    def _cluster_entry(self) -> dict[str, str]:
        entry = {"server": self.url}
        if self.ca_pem:
            entry["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        return entry

    # --- state the tests arrange and inspect ---------------------------------------------------------
    def add_node(
        self, name: str, *, ready: bool = True, role: str = "worker", kubelet_version: str | None = None
    ) -> None:
        labels = {"kubernetes.io/hostname": name}
        if role == "master":
            labels["node-role.kubernetes.io/control-plane"] = ""
        with self._lock:
            self._nodes[name] = {
                "kind": "Node",
                "apiVersion": "v1",
                "metadata": {
                    "name": name,
                    "uid": str(uuid.uuid4()),
                    "labels": labels,
                    "creationTimestamp": _now(),
                },
                "spec": {},
                "status": {
                    "conditions": [self._ready_condition(ready)],
                    "nodeInfo": _node_info(kubelet_version or self.server_version),
                },
            }

    def set_kubelet_version(self, name: str, version: str) -> None:
        with self._lock:
            self._nodes[name]["status"]["nodeInfo"] = _node_info(version)

    def set_ready(self, name: str, ready: bool) -> None:
        with self._lock:
            self._nodes[name]["status"]["conditions"] = [self._ready_condition(ready)]

    def set_node_network(self, name: str, *, address: str, pod_cidr: str | None = None) -> None:
        """The node's InternalIP (as its kubelet reports it) and pod range (as the controller manager
        allocates it)."""
        with self._lock:
            node = self._nodes[name]
            node["status"]["addresses"] = [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ]
            if pod_cidr is not None:
                node["spec"]["podCIDR"] = pod_cidr

    def add_pod(
        self,
        namespace: str,
        name: str,
        *,
        node: str,
        labels: dict[str, str] | None = None,
        owner_kind: str | None = "ReplicaSet",
        mirror: bool = False,
        phase: str = "Running",
        waiting_reason: str | None = None,
        restarts: int = 0,
        containers: tuple[str, ...] = ("main",),
        logs: dict[str, list[str]] | None = None,
    ) -> None:
        with self._lock:
            self._pods[(namespace, name)] = PeerPod(
                namespace=namespace, name=name, node=node, labels=dict(labels or {}),
                owner_kind=owner_kind, mirror=mirror, phase=phase, waiting_reason=waiting_reason,
                restarts=restarts, containers=containers, logs=dict(logs or {}),
            )  # fmt: skip

    def add_event(
        self, namespace: str, *, kind: str, name: str, reason: str, message: str, type: str = "Normal"
    ) -> None:
        with self._lock:
            self._events.append(PeerEvent(namespace, kind, name, reason, message, type))

    def add_deployment(
        self, namespace: str, name: str, *, match_labels: dict[str, str], replicas: int
    ) -> None:
        self._put("deployments", namespace, name, "Deployment", "apps/v1", {
            "spec": {"replicas": replicas, "selector": {"matchLabels": match_labels},
                     "template": {"spec": {"containers": [{"name": "main", "image": IMAGE}]}}},
            "status": {"replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas,
                       "availableReplicas": replicas},
        })  # fmt: skip

    def add_daemon_set(self, namespace: str, name: str) -> None:
        """A DaemonSet a pod may name as its owner (`owner_kind="DaemonSet"` names `<pod>-owner`):
        `kubectl drain --ignore-daemonsets` looks its controller up before it skips the pod."""
        self._put("daemonsets", namespace, name, "DaemonSet", "apps/v1", {
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"spec": {"containers": [{"name": "main", "image": IMAGE}]}}},
            "status": {"desiredNumberScheduled": 1, "numberReady": 1},
        })  # fmt: skip

    def hold_not_ready(self, plural: str, namespace: str, name: str) -> None:
        """The workload (deployments, statefulsets, daemonsets) reports none ready, applied or not yet."""
        with self._lock:
            self._held_not_ready.add((plural, namespace, name))
            stored = self._objects.get((plural, namespace, name))
            if stored is not None:
                stored["status"] = _workload_status(stored, nodes=len(self._nodes), ready=False)

    def let_ready(self, plural: str, namespace: str, name: str) -> None:
        """A held workload becomes ready, as its pods would once their images are pulled."""
        with self._lock:
            self._held_not_ready.discard((plural, namespace, name))
            stored = self._objects.get((plural, namespace, name))
            if stored is not None:
                stored["status"] = _workload_status(stored, nodes=len(self._nodes), ready=True)

    def add_service(self, namespace: str, name: str, *, port: int) -> None:
        spec = {"type": "ClusterIP", "clusterIP": "10.96.0.10", "ports": [{"port": port, "protocol": "TCP"}]}
        self._put("services", namespace, name, "Service", "v1", {"spec": spec})

    def add_secret(self, namespace: str, name: str, *, data: dict[str, str]) -> None:
        """`data` in plain text; stored base64 as the API does, and again in the last-applied annotation."""
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        applied = json.dumps({"apiVersion": "v1", "kind": "Secret", "data": encoded})
        self._put("secrets", namespace, name, "Secret", "v1", {"type": "Opaque", "data": encoded},
                  annotations={LAST_APPLIED: applied})  # fmt: skip

    def add_config_map(self, namespace: str, name: str, *, data: dict[str, str]) -> None:
        applied = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "data": data})
        self._put("configmaps", namespace, name, "ConfigMap", "v1", {"data": dict(data)},
                  annotations={LAST_APPLIED: applied})  # fmt: skip

    def _put(
        self,
        plural: str,
        namespace: str,
        name: str,
        kind: str,
        api_version: str,
        extra: dict[str, Any],
        *,
        annotations: dict[str, str] | None = None,
    ) -> None:
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "creationTimestamp": _now(),
        }
        if annotations:
            metadata["annotations"] = annotations
        with self._lock:
            self._objects[(plural, namespace, name)] = {
                "kind": kind, "apiVersion": api_version, "metadata": metadata, **extra
            }  # fmt: skip

    def add_budget(
        self, namespace: str, name: str, *, match_labels: dict[str, str], disruptions_allowed: int
    ) -> None:
        with self._lock:
            self._budgets[(namespace, name)] = PeerBudget(namespace, name, match_labels, disruptions_allowed)

    def set_disruptions_allowed(self, namespace: str, name: str, value: int) -> None:
        with self._lock:
            self._budgets[(namespace, name)].disruptions_allowed = value

    def node(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._nodes.get(name)
            return json.loads(json.dumps(found)) if found else None

    def node_names(self) -> list[str]:
        with self._lock:
            return sorted(self._nodes)

    def pods_on(self, node: str) -> list[str]:
        with self._lock:
            self._expire()
            return sorted(f"{p.namespace}/{p.name}" for p in self._pods.values() if p.node == node)

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._requests.all()

    def calls(self, method: str, path_contains: str = "") -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and path_contains in r.path]

    # --- the API -------------------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, content_type: str | None
    ) -> tuple[int, dict[str, Any] | str]:
        self._requests.add(RecordedRequest(method, path, query, content_type, body))
        with self._lock:
            self._expire()
            parts = [part for part in path.split("/") if part]
            applied = self._apply_route(method, parts, query, body, content_type)
            if applied is not None:
                return applied
            if method == "GET":
                answer = self._read(parts, query)
                if answer is not None:
                    return answer
            if parts[:2] != ["api", "v1"]:
                return 404, _status(404, "NotFound", f"the server could not find {path}")
            rest = parts[2:]
            if rest == ["nodes"] and method == "GET":
                return 200, {
                    "kind": "NodeList",
                    "apiVersion": "v1",
                    "metadata": {},
                    "items": list(self._nodes.values()),
                }
            if len(rest) == 2 and rest[0] == "nodes":
                return self._node_item(method, rest[1], body, content_type)
            if rest == ["pods"] and method == "GET":
                return self._list_pods(query)
            eviction = len(rest) == 5 and rest[0] == "namespaces" and rest[2:5:2] == ["pods", "eviction"]
            if eviction and method == "POST" and content_type in (None, "application/json"):
                return self._evict(rest[1], rest[3], body)
            return 405, _status(405, "MethodNotAllowed", f"{method} {path} is not supported by this server")

    def _node_item(
        self, method: str, name: str, body: Any, content_type: str | None
    ) -> tuple[int, dict[str, Any]]:
        node = self._nodes.get(name)
        if node is None:
            return 404, _status(
                404, "NotFound", f'nodes "{name}" not found', details={"name": name, "kind": "nodes"}
            )
        if method == "GET":
            return 200, node
        if method == "DELETE":
            del self._nodes[name]
            return 200, _status(
                200, "", "", details={"name": name, "kind": "nodes", "uid": node["metadata"]["uid"]}
            )
        if method == "PATCH":
            if content_type not in (STRATEGIC_MERGE, MERGE_PATCH) or not isinstance(body, dict):
                return 415, _status(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format: {content_type}",
                )
            spec = body.get("spec") or {}
            if "unschedulable" in spec:
                if spec["unschedulable"]:
                    node["spec"]["unschedulable"] = True
                else:
                    node["spec"].pop("unschedulable", None)
            return 200, node
        return 405, _status(405, "MethodNotAllowed", f"{method} on a node is not supported")

    def _list_pods(
        self, query: dict[str, list[str]], namespace: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        pods = [p for p in self._pods.values() if namespace is None or p.namespace == namespace]
        items = [self._pod_json(pod) for pod in pods]
        return self._list("PodList", "v1", items, query, SUPPORTED_POD_FIELDS)

    # --- reads of chat kubectl ---------------------------------------------------------------------
    def _read(self, parts: list[str], query: dict[str, list[str]]) -> tuple[int, dict[str, Any] | str] | None:
        """GETs beyond the drain's: None leaves the request to the routes above."""
        if parts == ["version"]:
            return 200, _version_info(self.server_version)
        if parts == ["api"]:
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if parts == ["apis"]:
            return 200, self._discovery()
        served = self._resource_list(parts)
        if served is not None:
            return 200, served
        if parts[:3] == list(METRICS):
            return self._metrics(parts[3:])
        if parts[:2] == ["api", "v1"]:
            rest = parts[2:]
        elif parts[:3] in (
            ["apis", "apps", "v1"],
            ["apis", "batch", "v1"],
            ["apis", "networking.k8s.io", "v1"],
        ):
            rest = parts[3:]
        else:
            return None
        namespace: str | None = None
        if len(rest) >= 2 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        elif rest == ["namespaces"]:
            names = sorted(
                {p.namespace for p in self._pods.values()} | {k[1] for k in self._objects} | {"default"}
            )
            items = [{"kind": "Namespace", "apiVersion": "v1", "status": {"phase": "Active"},
                      "metadata": {"name": n, "creationTimestamp": _now()}} for n in names]  # fmt: skip
            return self._list("NamespaceList", "v1", items, query, ("metadata.name",))
        if not rest:
            return None
        plural = rest[0]
        if plural == "pods" and namespace is not None:
            if len(rest) == 1:
                return self._list_pods(query, namespace)
            pod = self._pods.get((namespace, rest[1]))
            if pod is None:
                return 404, _status(404, "NotFound", f'pods "{rest[1]}" not found')
            if rest[2:] == ["log"]:
                return self._log(pod, query)
            return (200, self._pod_json(pod)) if len(rest) == 2 else None
        if plural == "events":
            items = [
                self._event_json(e) for e in self._events if namespace is None or e.namespace == namespace
            ]
            return self._list("EventList", "v1", items, query, SUPPORTED_EVENT_FIELDS)
        if plural in ("nodes", "pods") or (len(rest) > 1 and namespace is None):
            return None
        found = [
            o for (p, ns, _), o in sorted(self._objects.items()) if p == plural and namespace in (None, ns)
        ]
        if len(rest) == 2:
            item = next((o for o in found if o["metadata"]["name"] == rest[1]), None)
            if item is None:
                return 404, _status(404, "NotFound", f'{plural} "{rest[1]}" not found')
            return 200, item
        return self._list("List", "v1", found, query, ("metadata.name", "metadata.namespace"))

    def _list(
        self,
        kind: str,
        api_version: str,
        items: list[dict[str, Any]],
        query: dict[str, list[str]],
        fields: tuple[str, ...],
    ) -> tuple[int, dict[str, Any]]:
        try:
            labels = _requirements((query.get("labelSelector") or [""])[0], fields=None)
            by_field = _requirements((query.get("fieldSelector") or [""])[0], fields=fields)
        except ValueError as exc:
            return 400, _status(400, "BadRequest", str(exc))
        chosen = [
            item for item in items
            if _matches(labels, item["metadata"].get("labels") or {})
            and _matches(by_field, _field_values(item))
        ]  # fmt: skip
        metadata: dict[str, Any] = {"resourceVersion": "1"}
        limit = int((query.get("limit") or ["0"])[0])
        if 0 < limit < len(chosen):
            chosen, metadata["continue"] = chosen[:limit], "more"
        return 200, {"kind": kind, "apiVersion": api_version, "metadata": metadata, "items": chosen}

    def _log(self, pod: PeerPod, query: dict[str, list[str]]) -> tuple[int, dict[str, Any] | str]:
        container = (query.get("container") or [""])[0]
        if not container:
            if len(pod.containers) > 1:
                message = (f"a container name must be specified for pod {pod.name}, "
                           f"choose one of: [{' '.join(pod.containers)}]")  # fmt: skip
                return 400, _status(400, "BadRequest", message)
            container = pod.containers[0]
        if container not in pod.containers:
            return 400, _status(400, "BadRequest", f"container {container} is not valid for pod {pod.name}")
        key = f"{container}/previous" if (query.get("previous") or [""])[0] == "true" else container
        lines = pod.logs.get(key, [])
        tail = int((query.get("tailLines") or ["0"])[0])
        if tail > 0:
            lines = lines[-tail:]
        text = "".join(f"{line}\n" for line in lines)
        limit = int((query.get("limitBytes") or ["0"])[0])
        if limit > 0:  # the API server stops at limitBytes, even inside a line or a character
            text = text.encode()[:limit].decode(errors="ignore")
        return 200, text

    def _metrics(self, rest: list[str]) -> tuple[int, dict[str, Any]]:
        if not self.metrics_available:
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        if rest == ["nodes"]:
            nodes: list[dict[str, Any]] = [
                {"metadata": {"name": name}, "timestamp": _now(), "window": "10s",
                 "usage": {"cpu": "250m", "memory": "1024Mi"}} for name in sorted(self._nodes)
            ]  # fmt: skip
            return 200, {"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "items": nodes}
        namespace = rest[1] if len(rest) == 3 and rest[0] == "namespaces" else None
        if rest[-1:] != ["pods"] or (len(rest) != 1 and namespace is None):
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        items: list[dict[str, Any]] = [
            {"metadata": {"name": p.name, "namespace": p.namespace}, "timestamp": _now(), "window": "10s",
             "containers": [{"name": c, "usage": {"cpu": p.cpu, "memory": p.memory}} for c in p.containers]}
            for p in self._pods.values() if namespace in (None, p.namespace)
        ]  # fmt: skip
        return 200, {"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "items": items}

    def _discovery(self) -> dict[str, Any]:
        groups = [("apps", "v1"), ("batch", "v1"), ("networking.k8s.io", "v1"), ("policy", "v1")]
        if self.metrics_available:
            groups.append(("metrics.k8s.io", "v1beta1"))
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {"name": name, "versions": [{"groupVersion": f"{name}/{v}", "version": v}],
                 "preferredVersion": {"groupVersion": f"{name}/{v}", "version": v}}
                for name, v in groups
            ],
        }  # fmt: skip

    def _resource_list(self, parts: list[str]) -> dict[str, Any] | None:
        """A group version's APIResourceList (`/api/v1`, `/apis/apps/v1`): kubectl maps `node` to a
        resource with it, and `drain` looks for `pods/eviction` there before it evicts."""
        group_version = "v1" if parts == ["api", "v1"] else "/".join(parts[1:]) if len(parts) == 3 else ""
        resources = API_RESOURCES.get(group_version)
        if resources is None or (group_version == "/".join(METRICS[1:]) and not self.metrics_available):
            return None
        listed = []
        for name, kind, namespaced, verbs in resources:
            entry: dict[str, Any] = {"name": name, "singularName": "", "namespaced": namespaced,
                                     "kind": kind, "verbs": list(verbs)}  # fmt: skip
            if name == "pods/eviction":
                entry.update(group="policy", version="v1")
            listed.append(entry)
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                "resources": listed}  # fmt: skip

    @staticmethod
    def _event_json(event: PeerEvent) -> dict[str, Any]:
        return {
            "kind": "Event",
            "apiVersion": "v1",
            "metadata": {"name": f"{event.name}.{event.uid[:8]}", "namespace": event.namespace,
                         "uid": event.uid, "creationTimestamp": event.at},
            "involvedObject": {"kind": event.kind, "name": event.name, "namespace": event.namespace},
            "reason": event.reason,
            "message": event.message,
            "type": event.type,
            "count": 1,
            "lastTimestamp": event.at,
        }  # fmt: skip

    def _evict(self, namespace: str, name: str, body: Any) -> tuple[int, dict[str, Any]]:
        if (
            not isinstance(body, dict)
            or body.get("kind") != "Eviction"
            or body.get("apiVersion") != "policy/v1"
        ):
            return 400, _status(400, "BadRequest", "the body must be a policy/v1 Eviction")
        if (body.get("metadata") or {}).get("name") != name:
            return 400, _status(400, "BadRequest", "name in URL does not match name in Eviction object")
        pod = self._pods.get((namespace, name))
        if pod is None:
            return 404, _status(404, "NotFound", f'pods "{name}" not found')
        if pod.remove_at is not None:
            return 201, _status(201, "", "")
        for budget in self._budgets.values():
            if budget.covers(pod) and budget.disruptions_allowed <= 0:
                message = "Cannot evict pod as it would violate the pod's disruption budget."
                cause = {
                    "reason": "DisruptionBudget",
                    "message": f"The disruption budget {budget.name} needs more healthy pods",
                }
                return 429, _status(429, "TooManyRequests", message, details={"causes": [cause]})
        for budget in self._budgets.values():
            if budget.covers(pod):
                budget.disruptions_allowed -= 1
        pod.remove_at = time.monotonic() + self.eviction_delay
        pod.deleted_at = _now()
        return 201, _status(201, "", "")

    # --- internals -----------------------------------------------------------------------------------
    def _expire(self) -> None:
        now = time.monotonic()
        for key, pod in list(self._pods.items()):
            if pod.remove_at is not None and pod.remove_at <= now:
                del self._pods[key]
                for budget in self._budgets.values():
                    if budget.covers(pod):
                        budget.disruptions_allowed += 1

    @staticmethod
    def _ready_condition(ready: bool) -> dict[str, Any]:
        return {
            "type": "Ready",
            "status": "True" if ready else "False",
            "reason": "KubeletReady" if ready else "KubeletNotReady",
            "lastHeartbeatTime": _now(),
            "lastTransitionTime": _now(),
        }

    @staticmethod
    def _pod_json(pod: PeerPod) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": pod.name,
            "namespace": pod.namespace,
            "uid": pod.uid,
            "labels": pod.labels,
            "creationTimestamp": _now(),
        }
        if pod.owner_kind:
            metadata["ownerReferences"] = [
                {"apiVersion": "apps/v1", "kind": pod.owner_kind, "name": f"{pod.name}-owner",
                 "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, pod.name)), "controller": True}
            ]  # fmt: skip
        if pod.mirror:
            metadata["annotations"] = {MIRROR_ANNOTATION: "mirror"}
        if pod.deleted_at:
            metadata["deletionTimestamp"] = pod.deleted_at
        running = pod.waiting_reason is None and pod.phase == "Running"
        state: dict[str, Any] = (
            {"running": {"startedAt": _now()}} if running
            else {"waiting": {"reason": pod.waiting_reason or "ContainerCreating"}}
        )  # fmt: skip
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": metadata,
            "spec": {
                "nodeName": pod.node,
                "containers": [{"name": c, "image": "registry.local/app:1"} for c in pod.containers],
            },
            "status": {
                "phase": pod.phase,
                "podIP": "10.244.0.5",
                "containerStatuses": [
                    {"name": c, "ready": running, "restartCount": pod.restarts, "state": state,
                     "image": IMAGE, "imageID": f"{IMAGE}@sha256:{'0' * 64}"}
                    for c in pod.containers
                ],
            },
        }  # fmt: skip

    async def _dispatch(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response(_status(401, "Unauthorized", "Unauthorized"), status=401)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return web.json_response(_status(400, "BadRequest", "the body is not JSON"), status=400)
        split = urlsplit(request.raw_path)
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip() or None
        fault = self.faults.take(split.path)
        await self.apply_delay(fault)
        if fault is not None and fault.status:
            # `fail_next(status=403, path=..., body="message")`: a Status error as the API server sends it
            message = str(fault.body or "injected failure")
            reason = _REASONS.get(fault.status, "InternalError")
            return web.json_response(_status(fault.status, reason, message), status=fault.status)
        code, answer = self.handle(request.method, split.path, parse_qs(split.query), body, content_type)
        if isinstance(answer, str):
            return web.Response(text=answer, status=code, content_type="text/plain")
        return web.json_response(answer, status=code)

    # --- server-side apply, CRDs and deletion (addons) ------------------------------------------------
    def applied(self) -> dict[str, dict[str, Any]]:
        """Every object a server-side apply created and that is still there, as `Kind namespace/name`."""
        with self._lock:
            found = list(self._applied.values()) + [
                o for o in self._objects.values() if (o.get("metadata") or {}).get("managedFields")
            ]
        return {_object_label(o): json.loads(json.dumps(o)) for o in found}

    def _apply_route(
        self, method: str, parts: list[str], query: dict[str, list[str]], body: Any, content_type: str | None
    ) -> tuple[int, dict[str, Any]] | None:
        """Server-side apply (PATCH apply-patch+yaml), DELETE of applied objects, and GETs of the kinds the
        read routes do not serve; None leaves the request to the routes above."""
        where = _resource_path(parts)
        if where is None:
            return None
        group_version, namespace, plural, name = where
        if method == "PATCH" and content_type == APPLY_PATCH:
            if name is None:
                return 405, _status(405, "MethodNotAllowed", "apply needs an object's name in the path")
            return self._server_side_apply(group_version, namespace, plural, name, query, body)
        key = (group_version, plural, namespace or "", name or "")
        store_key = (plural, namespace or "", name or "")
        if method == "DELETE" and name is not None:
            if key in self._applied:
                gone = self._applied.pop(key)
            elif store_key in self._objects and plural not in ("pods", "nodes"):
                gone = self._objects.pop(store_key)
            elif plural in ("pods", "nodes") and group_version == "v1":
                return None  # the node and pod routes below delete those, as kubectl and drains expect
            else:
                return 404, _status(404, "NotFound", f'{plural} "{name}" not found')
            self._cascade(gone)
            return 200, _status(200, "", "", status="Success", details={"name": name, "kind": plural})
        if method == "GET" and name is not None and group_version not in READ_GROUPS:
            found = self._applied.get(key)
            if found is None:
                return 404, _status(404, "NotFound", f'{plural} "{name}" not found')
            return 200, found
        return None

    def _server_side_apply(
        self,
        group_version: str,
        namespace: str | None,
        plural: str,
        name: str,
        query: dict[str, list[str]],
        body: Any,
    ) -> tuple[int, dict[str, Any]]:
        manager = (query.get("fieldManager") or [""])[0]
        if not manager:
            return 400, _status(400, "BadRequest", "fieldManager is required for apply requests")
        if not isinstance(body, dict) or body.get("apiVersion") != group_version or not body.get("kind"):
            return 400, _status(400, "BadRequest", f"the object's apiVersion must be {group_version}")
        if (body.get("metadata") or {}).get("name") != name:
            return 400, _status(400, "BadRequest", "the object's name does not match the name on the URL")
        group = group_version.rpartition("/")[0]
        if group not in BUILTIN_GROUPS and not self._served(group, plural):
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        if namespace is not None and namespace not in self._namespaces():
            return 404, _status(404, "NotFound", f'namespaces "{namespace}" not found')
        in_objects = group_version in READ_GROUPS and namespace is not None
        key = (group_version, plural, namespace or "", name)
        store_key = (plural, namespace, name) if namespace is not None else None
        old = self._objects.get(store_key) if in_objects and store_key else self._applied.get(key)
        metadata = dict(body["metadata"])
        metadata.update(
            uid=(old or {}).get("metadata", {}).get("uid") or str(uuid.uuid4()),
            creationTimestamp=(old or {}).get("metadata", {}).get("creationTimestamp") or _now(),
            resourceVersion=str(int((old or {}).get("metadata", {}).get("resourceVersion") or "0") + 1),
            managedFields=[{"manager": manager, "operation": "Apply", "apiVersion": group_version}],
        )
        if namespace is not None:
            metadata["namespace"] = namespace
        stored = {**body, "metadata": metadata}
        if body["kind"] in ("Deployment", "StatefulSet"):
            replicas = (body.get("spec") or {}).get("replicas", 1)
            stored["status"] = {"replicas": replicas, "readyReplicas": replicas}
        elif body["kind"] == "DaemonSet":
            count = max(len(self._nodes), 1)
            stored["status"] = {"desiredNumberScheduled": count, "numberReady": count}
        if (plural, namespace or "", name) in self._held_not_ready:
            stored["status"] = _workload_status(stored, nodes=len(self._nodes), ready=False)
        if in_objects and store_key is not None:
            self._objects[store_key] = stored
        else:
            self._applied[key] = stored
        return (200 if old is not None else 201), stored

    def _served(self, group: str, plural: str) -> bool:
        """A custom resource is served only once its CRD was applied (and until it is deleted)."""
        return any(
            o["kind"] == "CustomResourceDefinition"
            and o["spec"]["group"] == group
            and o["spec"]["names"]["plural"] == plural
            for o in self._applied.values()
        )

    def _namespaces(self) -> set[str]:
        applied = {o["metadata"]["name"] for o in self._applied.values() if o["kind"] == "Namespace"}
        return (
            applied
            | {"default", "kube-system"}
            | {p.namespace for p in self._pods.values()}
            | {k[1] for k in self._objects}
        )

    def _cascade(self, gone: dict[str, Any]) -> None:
        """The API server's garbage collection: a CRD takes its resources, a namespace its objects."""
        if gone["kind"] == "CustomResourceDefinition":
            group, plural = gone["spec"]["group"], gone["spec"]["names"]["plural"]
            for key in [k for k in self._applied if k[0].rpartition("/")[0] == group and k[1] == plural]:
                del self._applied[key]
        elif gone["kind"] == "Namespace":
            namespace = gone["metadata"]["name"]
            for key in [k for k in self._applied if k[2] == namespace]:
                del self._applied[key]
            for store_key in [k for k in self._objects if k[1] == namespace]:
                del self._objects[store_key]


APPLY_PATCH = "application/apply-patch+yaml"
_READ = ("get", "list", "watch")
_WRITE = ("create", "delete", "patch", "update")
API_RESOURCES: dict[str, tuple[tuple[str, str, bool, tuple[str, ...]], ...]] = {
    "v1": (
        ("nodes", "Node", False, (*_READ, "delete", "patch", "update")),
        ("pods", "Pod", True, (*_READ, *_WRITE)),
        ("pods/eviction", "Eviction", True, ("create",)),
        ("pods/log", "Pod", True, ("get",)),
        ("namespaces", "Namespace", False, (*_READ, *_WRITE)),
        ("services", "Service", True, (*_READ, *_WRITE)),
        ("secrets", "Secret", True, (*_READ, *_WRITE)),
        ("configmaps", "ConfigMap", True, (*_READ, *_WRITE)),
        ("events", "Event", True, _READ),
    ),
    "apps/v1": tuple(
        (plural, kind, True, (*_READ, *_WRITE))
        for plural, kind in (
            ("deployments", "Deployment"),
            ("daemonsets", "DaemonSet"),
            ("statefulsets", "StatefulSet"),
            ("replicasets", "ReplicaSet"),
        )
    ),
    "batch/v1": (("jobs", "Job", True, (*_READ, *_WRITE)), ("cronjobs", "CronJob", True, (*_READ, *_WRITE))),
    "networking.k8s.io/v1": (("ingresses", "Ingress", True, (*_READ, *_WRITE)),),
    "policy/v1": (("poddisruptionbudgets", "PodDisruptionBudget", True, (*_READ, *_WRITE)),),
    "metrics.k8s.io/v1beta1": (
        ("nodes", "NodeMetrics", False, ("get", "list")),
        ("pods", "PodMetrics", True, ("get", "list")),
    ),
}
"""Discovery's resources per group version (name, kind, namespaced, verbs): what kubectl resolves
`node`, `pods` and `drain`'s eviction support with. `pods/eviction` is policy/v1's Eviction."""
READ_GROUPS = frozenset({"v1", "apps/v1", "batch/v1", "networking.k8s.io/v1"})
"""Group versions whose namespaced objects live in `_objects`, where the chat-kubectl reads find them."""
BUILTIN_GROUPS = frozenset(
    {
        "", "apps", "batch", "networking.k8s.io", "rbac.authorization.k8s.io", "apiextensions.k8s.io",
        "storage.k8s.io", "policy", "scheduling.k8s.io", "node.k8s.io", "admissionregistration.k8s.io",
        "autoscaling", "apiregistration.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
    }
)  # fmt: skip


def _workload_status(workload: dict[str, Any], *, nodes: int, ready: bool) -> dict[str, Any]:
    if workload["kind"] == "DaemonSet":
        count = max(nodes, 1)
        return {"desiredNumberScheduled": count, "numberReady": count if ready else 0}
    replicas = (workload.get("spec") or {}).get("replicas", 1)
    return {"replicas": replicas, "readyReplicas": replicas if ready else 0}


def _resource_path(parts: list[str]) -> tuple[str, str | None, str, str | None] | None:
    """(group/version, namespace, plural, name) of an object or collection path; None for anything else."""
    if parts[:2] == ["api", "v1"]:
        group_version, rest = "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        return None
    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if len(rest) not in (1, 2):
        return None
    return group_version, namespace, rest[0], rest[1] if len(rest) == 2 else None


def _object_label(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{obj.get('kind')} {where}{metadata.get('name')}"
