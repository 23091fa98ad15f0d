"""A local Kubernetes API server for the endpoints kobot's drains use, over a real loopback socket.

It speaks the API's JSON (nodes, pods, policy/v1 evictions, Status errors) so the official
`kubernetes` client talks to it exactly as to a real API server, and it records every request.
A `LoopbackPeer` like the chat platforms' peers.
Pod disruption budgets behave like the real ones as far as an eviction sees them: an eviction that
would take a budget below zero is answered 429, and the budget recovers when the evicted pod is
gone (its replacement is assumed to start elsewhere, as a controller would do).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from aiohttp import web

from tests.peers.loopback import LoopbackPeer, Recording

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


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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

    def __init__(self, *, eviction_delay: float = 0.05) -> None:
        super().__init__()
        self.token = secrets.token_urlsafe(24)
        self.eviction_delay = eviction_delay
        self._lock = threading.Lock()
        self._nodes: dict[str, dict[str, Any]] = {}
        self._pods: dict[tuple[str, str], PeerPod] = {}
        self._budgets: dict[tuple[str, str], PeerBudget] = {}
        self._requests: Recording[RecordedRequest] = Recording()

    # --- lifecycle ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.origin

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig with this peer's URL and bearer token, as an admin.conf would be."""
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "peer", "cluster": {"server": self.url}}],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "admin@peer", "context": {"cluster": "peer", "user": "admin"}}],
            "current-context": "admin@peer",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document))
        path.chmod(0o600)
        return path

    # --- state the tests arrange and inspect ---------------------------------------------------------
    def add_node(self, name: str, *, ready: bool = True, role: str = "worker") -> None:
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
                "status": {"conditions": [self._ready_condition(ready)]},
            }

    def set_ready(self, name: str, ready: bool) -> None:
        with self._lock:
            self._nodes[name]["status"]["conditions"] = [self._ready_condition(ready)]

    def add_pod(
        self,
        namespace: str,
        name: str,
        *,
        node: str,
        labels: dict[str, str] | None = None,
        owner_kind: str | None = "ReplicaSet",
        mirror: bool = False,
    ) -> None:
        with self._lock:
            self._pods[(namespace, name)] = PeerPod(
                namespace=namespace, name=name, node=node, labels=dict(labels or {}),
                owner_kind=owner_kind, mirror=mirror,
            )  # fmt: skip

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
    ) -> tuple[int, dict[str, Any]]:
        self._requests.add(RecordedRequest(method, path, query, content_type, body))
        with self._lock:
            self._expire()
            parts = [part for part in path.split("/") if part]
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

    def _list_pods(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        selector = (query.get("fieldSelector") or [""])[0]
        node: str | None = None
        if selector:
            key, _, value = selector.partition("=")
            if key != "spec.nodeName" or not value:
                return 400, _status(400, "BadRequest", f"field label not supported: {selector}")
            node = value
        items = [self._pod_json(pod) for pod in self._pods.values() if node is None or pod.node == node]
        return 200, {
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "1"},
            "items": items,
        }

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
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": metadata,
            "spec": {"nodeName": pod.node, "containers": [{"name": "main", "image": "registry.local/app:1"}]},
            "status": {"phase": "Running"},
        }

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
        code, answer = self.handle(request.method, split.path, parse_qs(split.query), body, content_type)
        return web.json_response(answer, status=code)
