"""workers.kube through the official kubernetes client against the local API peer (tests/peers)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kobot.errors import JobCancelledError, StepFailedError
from tests.peers.kubernetes import KubernetesApiPeer
from workers.kube import DrainEvent, DrainEventKind, KubeCluster


@pytest.fixture
def peer() -> Iterator[KubernetesApiPeer]:
    with KubernetesApiPeer(eviction_delay=0.05) as server:
        server.add_node("demo-master-1", role="master")
        server.add_node("demo-worker-1")
        server.add_node("demo-worker-2")
        yield server


@pytest.fixture
def kube(peer: KubernetesApiPeer, data_dir: Path) -> Iterator[KubeCluster]:
    path = peer.write_kubeconfig(data_dir / "demo.kubeconfig")
    with KubeCluster.from_kubeconfig(kubeconfig=path, name="demo") as cluster:
        yield cluster


def never() -> bool:
    return False


def test_drain_evicts_workloads_and_leaves_daemonset_and_mirror_pods_peer(
    peer: KubernetesApiPeer, kube: KubeCluster
) -> None:
    peer.add_pod("default", "web-1", node="demo-worker-1", labels={"app": "web"})
    peer.add_pod("default", "job-1", node="demo-worker-1", owner_kind=None)
    peer.add_pod("kube-system", "proxy-a", node="demo-worker-1", owner_kind="DaemonSet")
    peer.add_pod("kube-system", "static-a", node="demo-worker-1", owner_kind="Node", mirror=True)
    peer.add_pod("default", "web-2", node="demo-worker-2", labels={"app": "web"})
    events: list[DrainEvent] = []

    result = kube.drain("demo-worker-1", timeout=10, should_cancel=never, on_event=events.append, poll=0.05)

    assert result.evicted == ("default/job-1", "default/web-1")
    assert result.skipped == ("kube-system/proxy-a", "kube-system/static-a")
    assert peer.pods_on("demo-worker-1") == ["kube-system/proxy-a", "kube-system/static-a"]
    assert peer.pods_on("demo-worker-2") == ["default/web-2"], "pods elsewhere are untouched"
    node = peer.node("demo-worker-1")
    assert node is not None and node["spec"]["unschedulable"] is True
    evictions = peer.calls("POST", "/eviction")
    assert sorted(call.path for call in evictions) == [
        "/api/v1/namespaces/default/pods/job-1/eviction",
        "/api/v1/namespaces/default/pods/web-1/eviction",
    ]
    assert all(call.body["apiVersion"] == "policy/v1" for call in evictions)
    assert {e.kind for e in events} == {DrainEventKind.SKIPPED, DrainEventKind.EVICTED}
    listing = peer.calls("GET", "/api/v1/pods")[0]
    assert listing.query["fieldSelector"] == ["spec.nodeName=demo-worker-1"]


def test_budget_429_is_retried_until_the_budget_allows_it_peer(
    peer: KubernetesApiPeer, kube: KubeCluster
) -> None:
    """Two replicas on the node and a budget allowing one disruption: the second waits for the first."""
    for name in ("web-1", "web-2"):
        peer.add_pod("default", name, node="demo-worker-1", labels={"app": "web"})
    peer.add_budget("default", "web", match_labels={"app": "web"}, disruptions_allowed=1)
    peer.eviction_delay = 0.3
    events: list[DrainEvent] = []

    result = kube.drain("demo-worker-1", timeout=10, should_cancel=never, on_event=events.append, poll=0.05)

    assert result.evicted == ("default/web-1", "default/web-2")
    assert peer.pods_on("demo-worker-1") == []
    blocked = [e for e in events if e.kind is DrainEventKind.BLOCKED]
    assert blocked and blocked[0].pod == "default/web-2"
    assert "disruption budget" in blocked[0].message
    web2 = peer.calls("POST", "/pods/web-2/eviction")
    assert len(web2) >= 2, "the refused eviction was tried again"


def test_drain_blocked_by_budget_fails_at_timeout_naming_the_pods_peer(
    peer: KubernetesApiPeer, kube: KubeCluster
) -> None:
    peer.add_pod("default", "db-0", node="demo-worker-1", labels={"app": "db"})
    peer.add_pod("default", "web-1", node="demo-worker-1", labels={"app": "web"})
    peer.add_budget("default", "db", match_labels={"app": "db"}, disruptions_allowed=0)

    with pytest.raises(StepFailedError) as failed:
        kube.drain("demo-worker-1", timeout=0.6, should_cancel=never, poll=0.1)

    message = failed.value.user_message
    assert "default/db-0" in message and "web-1" not in message
    assert "not removed" in message
    assert failed.value.host == "demo-worker-1"
    assert failed.value.error is not None and "disruption budget db" in failed.value.error
    assert peer.pods_on("demo-worker-1") == ["default/db-0"]
    assert "demo-worker-1" in peer.node_names(), "a failed drain never deletes the node"
    assert len(peer.calls("POST", "/pods/db-0/eviction")) >= 2


def test_cancel_stops_a_waiting_drain_peer(peer: KubernetesApiPeer, kube: KubeCluster) -> None:
    peer.add_pod("default", "db-0", node="demo-worker-1", labels={"app": "db"})
    peer.add_budget("default", "db", match_labels={"app": "db"}, disruptions_allowed=0)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()

    with pytest.raises(JobCancelledError):
        kube.drain("demo-worker-1", timeout=30, should_cancel=cancel.is_set, poll=5)

    assert time.monotonic() - started < 5, "cancel is seen while waiting, not after the poll interval"
    assert peer.pods_on("demo-worker-1") == ["default/db-0"]


def test_cordon_and_uncordon_are_strategic_merge_patches_peer(
    peer: KubernetesApiPeer, kube: KubeCluster
) -> None:
    kube.cordon("demo-worker-2")
    assert [n.unschedulable for n in kube.list_nodes() if n.name == "demo-worker-2"] == [True]
    kube.uncordon("demo-worker-2")
    node = peer.node("demo-worker-2")
    assert node is not None and "unschedulable" not in node["spec"]
    patches = peer.calls("PATCH", "/api/v1/nodes/demo-worker-2")
    assert [p.content_type for p in patches] == ["application/strategic-merge-patch+json"] * 2
    assert [p.body for p in patches] == [
        {"spec": {"unschedulable": True}},
        {"spec": {"unschedulable": False}},
    ]


def test_node_ready_list_and_delete_peer(peer: KubernetesApiPeer, kube: KubeCluster) -> None:
    peer.set_ready("demo-worker-2", False)
    assert kube.node_ready("demo-worker-1") is True
    assert kube.node_ready("demo-worker-2") is False
    assert kube.node_ready("no-such-node") is False
    roles = {n.name: n.roles for n in kube.list_nodes()}
    assert roles["demo-master-1"] == ("control-plane",) and roles["demo-worker-1"] == ()

    kube.delete_node("demo-worker-2")
    kube.delete_node("demo-worker-2")  # a retried step repeats it: already gone is fine
    assert peer.node_names() == ["demo-master-1", "demo-worker-1"]

    with pytest.raises(StepFailedError, match="refused to cordon no-such-node: 404"):
        kube.cordon("no-such-node")


def test_wait_ready_times_out_naming_the_node_peer(peer: KubernetesApiPeer, kube: KubeCluster) -> None:
    peer.set_ready("demo-worker-1", False)
    threading.Timer(0.2, peer.set_ready, args=("demo-worker-1", True)).start()
    kube.wait_ready("demo-worker-1", timeout=5, should_cancel=never, poll=0.05)
    peer.set_ready("demo-worker-2", False)
    with pytest.raises(StepFailedError, match="demo-worker-2 did not become Ready"):
        kube.wait_ready("demo-worker-2", timeout=0.3, should_cancel=never, poll=0.05)


def test_wrong_token_missing_kubeconfig_and_dead_server_are_clear_failures_peer(
    peer: KubernetesApiPeer, data_dir: Path
) -> None:
    path = peer.write_kubeconfig(data_dir / "stale.yaml")
    path.write_text(path.read_text().replace(peer.token, "not-the-token"))
    with (
        KubeCluster.from_kubeconfig(kubeconfig=path, name="demo") as stale,
        pytest.raises(StepFailedError, match="refused to list nodes: 401"),
    ):
        stale.list_nodes()

    with pytest.raises(StepFailedError, match="no kubeconfig for demo"):
        KubeCluster.from_kubeconfig(kubeconfig=data_dir / "missing.yaml", name="demo")

    live = peer.write_kubeconfig(data_dir / "live.yaml")
    peer.stop()
    with (
        KubeCluster.from_kubeconfig(kubeconfig=live, name="demo") as gone,
        pytest.raises(StepFailedError, match="cannot reach the API server of demo"),
    ):
        gone.list_nodes()


def test_a_kubeconfig_held_in_memory_reaches_the_same_api_peer(
    peer: KubernetesApiPeer, data_dir: Path
) -> None:
    data = peer.write_kubeconfig(data_dir / "k.yaml").read_bytes()
    with KubeCluster.from_kubeconfig_data(data=data, name="demo") as cluster:
        assert [n.name for n in cluster.list_nodes()] == ["demo-master-1", "demo-worker-1", "demo-worker-2"]
    with pytest.raises(StepFailedError, match="kubeconfig of demo cannot be used"):
        KubeCluster.from_kubeconfig_data(data=b"- not a kubeconfig", name="demo")
