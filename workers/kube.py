"""A cluster's Kubernetes API through the official client: nodes, cordon, and safe drains.

A drain evicts through the Eviction API (policy/v1) so PodDisruptionBudgets are honoured: a 429
means "not now" and is retried until the drain's deadline; a drain that cannot finish raises
`StepFailedError` naming the pods that would not leave, and the caller must then keep the node.
DaemonSet pods and mirror (static) pods are left alone, as `kubectl drain` does: evicting them
achieves nothing, their controller or the kubelet puts them straight back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from urllib3.exceptions import HTTPError

from kobot.errors import JobCancelledError, StepFailedError

if TYPE_CHECKING:  # loaded when a job builds a client, not when `kobot serve` starts
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

# --- defaults -------------------------------------------------------------------------------------
DRAIN_TIMEOUT_SECONDS = 600.0
"""How long one node's drain may wait for budgets and terminating pods before it gives up."""

DRAIN_POLL_SECONDS = 1.0
"""Pause between two rounds of evictions and pod listings while a drain waits."""

CANCEL_SLICE_SECONDS = 0.2
"""A waiting drain looks at the cancel flag at least this often."""

API_REQUEST_TIMEOUT_SECONDS = 30.0
"""One API request may take this long before the step fails instead of hanging."""

NODE_READY_TIMEOUT_SECONDS = 600.0
"""How long an upgraded or joined node may take to report Ready."""

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON = "application/json"
ROLE_LABEL_PREFIX = "node-role.kubernetes.io/"


class DrainEventKind(str, Enum):
    SKIPPED = "skipped"
    """DaemonSet or mirror pod: it stays."""
    EVICTED = "evicted"
    BLOCKED = "blocked"
    """The API refused the eviction for now (a disruption budget): it is tried again."""
    GONE = "gone"


@dataclass(frozen=True)
class DrainEvent:
    kind: DrainEventKind
    node: str
    pod: str
    """`namespace/name`."""
    message: str


DrainCallback = Callable[[DrainEvent], None]


@dataclass(frozen=True)
class NodeStatus:
    name: str
    ready: bool
    unschedulable: bool
    roles: tuple[str, ...]
    kubelet_version: str = ""
    """What the node's kubelet reports (`v1.31.2`); empty when it has not reported yet."""


@dataclass(frozen=True)
class DrainResult:
    node: str
    evicted: tuple[str, ...]
    skipped: tuple[str, ...]


class KubeCluster:
    """One cluster's API. Every failure becomes a `StepFailedError` whose message is safe for chat."""

    def __init__(self, *, api_client: client.ApiClient, name: str = "the cluster") -> None:
        from kubernetes import client  # heavy: loaded by the first job that talks to a cluster

        self._api_client = api_client
        self._core = client.CoreV1Api(api_client)
        self.name = name

    @classmethod
    def from_kubeconfig(cls, *, kubeconfig: Path, name: str = "the cluster") -> KubeCluster:
        from kubernetes import config

        if not kubeconfig.is_file():
            raise StepFailedError(
                f"kobot has no kubeconfig for {name}", error=f"expected an admin kubeconfig at {kubeconfig}"
            )
        try:
            api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig), persist_config=False
            )
        except (config.ConfigException, ValueError, KeyError) as exc:
            raise StepFailedError(f"the kubeconfig of {name} cannot be used", error=str(exc)) from None
        return cls(api_client=api_client, name=name)

    @classmethod
    def from_kubeconfig_data(cls, *, data: bytes, name: str = "the cluster") -> KubeCluster:
        """From kubeconfig bytes held in memory (kobot keeps admin kubeconfigs encrypted, not on disk)."""
        from kubernetes import config

        try:
            document = yaml.safe_load(data)
            if not isinstance(document, dict):
                raise ValueError("not a kubeconfig document")
            api_client = config.new_client_from_config_dict(  # type: ignore[no-untyped-call]
                config_dict=document, persist_config=False
            )
        except (config.ConfigException, yaml.YAMLError, ValueError, KeyError) as exc:
            raise StepFailedError(
                f"the kubeconfig of {name} cannot be used", error=type(exc).__name__
            ) from None
        return cls(api_client=api_client, name=name)

    def close(self) -> None:
        self._api_client.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> KubeCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- nodes --------------------------------------------------------------------------------------
    def list_nodes(self) -> list[NodeStatus]:
        nodes = self._call("list nodes", self._core.list_node)
        return [_node_status(node) for node in nodes.items]

    def server_version(self) -> str:
        """The API server's version (`v1.31.2`), as `kubectl version` shows it."""
        from kubernetes import client

        info = self._call("read the API server version", client.VersionApi(self._api_client).get_code)
        return str(info.git_version)

    def node_ready(self, node: str) -> bool:
        """True when the node exists and its Ready condition is True."""
        from kubernetes.client.exceptions import ApiException

        try:
            found = self._core.read_node(name=node, _request_timeout=API_REQUEST_TIMEOUT_SECONDS)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise self._failure(f"read node {node}", exc) from None
        except HTTPError as exc:
            raise self._unreachable(f"read node {node}", exc) from None
        return _node_status(found).ready

    def wait_ready(
        self,
        node: str,
        *,
        timeout: float,
        should_cancel: Callable[[], bool],
        poll: float = DRAIN_POLL_SECONDS,
    ) -> None:
        deadline = time.monotonic() + timeout
        while not self.node_ready(node):
            if time.monotonic() >= deadline:
                raise StepFailedError(
                    f"node {node} did not become Ready within {timeout:.0f}s",
                    task=f"wait for {node}",
                    host=node,
                )
            _pause(min(poll, max(deadline - time.monotonic(), 0)), should_cancel)

    def cordon(self, node: str) -> None:
        self._set_unschedulable(node, True)

    def uncordon(self, node: str) -> None:
        self._set_unschedulable(node, False)

    def delete_node(self, node: str) -> None:
        """Remove the Node object; a node already gone counts as removed (a retry may repeat this)."""
        from kubernetes.client.exceptions import ApiException

        try:
            self._core.delete_node(name=node, _request_timeout=API_REQUEST_TIMEOUT_SECONDS)
        except ApiException as exc:
            if exc.status != 404:
                raise self._failure(f"delete node {node}", exc) from None
        except HTTPError as exc:
            raise self._unreachable(f"delete node {node}", exc) from None

    def pods_on(self, node: str) -> list[Any]:
        pods = self._call(
            f"list pods on {node}",
            self._core.list_pod_for_all_namespaces,
            field_selector=f"spec.nodeName={node}",
        )
        return list(pods.items)

    # --- drain --------------------------------------------------------------------------------------
    def drain(
        self,
        node: str,
        *,
        timeout: float = DRAIN_TIMEOUT_SECONDS,
        should_cancel: Callable[[], bool],
        on_event: DrainCallback | None = None,
        poll: float = DRAIN_POLL_SECONDS,
    ) -> DrainResult:
        """Cordon, then evict every evictable pod until none is left; raise if the deadline passes."""
        emit = on_event or (lambda event: None)
        deadline = time.monotonic() + timeout
        self.cordon(node)
        targets: dict[str, str] = {}
        skipped: list[str] = []
        for pod in self.pods_on(node):
            key, why = _pod_key(pod), _skip_reason(pod)
            if why:
                skipped.append(key)
                emit(DrainEvent(DrainEventKind.SKIPPED, node, key, why))
            else:
                targets[key] = pod.metadata.uid
        evicted: set[str] = set()
        blocked: dict[str, str] = {}
        while True:
            if should_cancel():
                raise JobCancelledError("cancelled on request")
            for key in sorted(set(targets) - evicted):
                outcome, message = self._evict(key)
                if outcome is DrainEventKind.BLOCKED:
                    if blocked.get(key) != message:
                        emit(DrainEvent(outcome, node, key, message))
                    blocked[key] = message
                    continue
                evicted.add(key)
                blocked.pop(key, None)
                emit(DrainEvent(outcome, node, key, message))
            present = {_pod_key(pod): pod.metadata.uid for pod in self.pods_on(node)}
            remaining = sorted(key for key, uid in targets.items() if present.get(key) == uid)
            if not remaining:
                return DrainResult(node=node, evicted=tuple(sorted(evicted)), skipped=tuple(skipped))
            now = time.monotonic()
            if now >= deadline:
                raise _drain_failed(node, timeout, remaining, blocked)
            _pause(min(poll, deadline - now), should_cancel)

    # --- internals ----------------------------------------------------------------------------------
    def _evict(self, key: str) -> tuple[DrainEventKind, str]:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        namespace, name = key.split("/", 1)
        body = client.V1Eviction(
            api_version="policy/v1",
            kind="Eviction",
            metadata=client.V1ObjectMeta(name=name, namespace=namespace),
        )
        try:
            self._core.create_namespaced_pod_eviction(
                name=name,
                namespace=namespace,
                body=body,
                _content_type=JSON,
                _request_timeout=API_REQUEST_TIMEOUT_SECONDS,
            )
        except ApiException as exc:
            if exc.status == 404:
                return DrainEventKind.GONE, "already gone"
            if exc.status in (401, 403):
                raise self._failure(f"evict {key}", exc) from None
            return DrainEventKind.BLOCKED, _api_message(exc)
        except HTTPError as exc:
            raise self._unreachable(f"evict {key}", exc) from None
        return DrainEventKind.EVICTED, "eviction accepted"

    def _set_unschedulable(self, node: str, value: bool) -> None:
        self._call(
            f"{'cordon' if value else 'uncordon'} {node}",
            self._core.patch_node,
            name=node,
            body={"spec": {"unschedulable": value}},
            _content_type=STRATEGIC_MERGE_PATCH,
        )

    def _call(self, what: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return method(_request_timeout=API_REQUEST_TIMEOUT_SECONDS, **kwargs)
        except ApiException as exc:
            raise self._failure(what, exc) from None
        except HTTPError as exc:
            raise self._unreachable(what, exc) from None

    def _failure(self, what: str, exc: ApiException) -> StepFailedError:
        return StepFailedError(
            f"the API server of {self.name} refused to {what}: {exc.status} {_api_message(exc)}",
            task=what,
            error=_api_message(exc),
        )

    def _unreachable(self, what: str, exc: Exception) -> StepFailedError:
        return StepFailedError(
            f"cannot reach the API server of {self.name} to {what}", task=what, error=type(exc).__name__
        )


def _node_status(node: Any) -> NodeStatus:
    conditions = (node.status.conditions if node.status else None) or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    info = node.status.node_info if node.status else None
    labels = node.metadata.labels or {}
    roles = tuple(
        sorted(k.removeprefix(ROLE_LABEL_PREFIX) for k in labels if k.startswith(ROLE_LABEL_PREFIX))
    )
    return NodeStatus(
        name=node.metadata.name,
        ready=ready,
        unschedulable=bool(node.spec and node.spec.unschedulable),
        roles=roles,
        kubelet_version=str(getattr(info, "kubelet_version", None) or ""),
    )


def _pod_key(pod: Any) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def _skip_reason(pod: Any) -> str | None:
    if MIRROR_ANNOTATION in (pod.metadata.annotations or {}):
        return "mirror pod of a static manifest: the kubelet owns it"
    owners = pod.metadata.owner_references or []
    if any(owner.kind == "DaemonSet" and owner.controller for owner in owners):
        return "DaemonSet pod: its controller ignores unschedulable nodes"
    return None


def _api_message(exc: ApiException) -> str:
    """The Status message (and first cause) of an API error, never the request or its headers."""
    try:
        import json

        status = json.loads(exc.body or "{}")
    except ValueError:
        return str(exc.reason or exc.status)
    causes = (status.get("details") or {}).get("causes") or []
    message = str(status.get("message") or exc.reason or exc.status)
    if causes and causes[0].get("message"):
        message = f"{message} ({causes[0]['message']})"
    return message


def _drain_failed(
    node: str, timeout: float, remaining: list[str], blocked: dict[str, str]
) -> StepFailedError:
    reasons = [f"{key} ({blocked.get(key, 'evicted, still terminating')})" for key in remaining]
    return StepFailedError(
        f"drain of {node} did not finish within {timeout:.0f}s; pods that would not leave: "
        + ", ".join(remaining)
        + f". {node} stays cordoned and is not removed.",
        task=f"drain {node}",
        host=node,
        error="; ".join(reasons),
    )


def _pause(seconds: float, should_cancel: Callable[[], bool]) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if should_cancel():
            raise JobCancelledError("cancelled on request")
        time.sleep(min(CANCEL_SLICE_SECONDS, left))
