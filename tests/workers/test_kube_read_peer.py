"""Chat `kubectl` reads against the Kubernetes API peer through the official client over a real socket."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kobot import defaults
from tests.peers.kubernetes import KubernetesApiPeer
from tests.support.network import free_port
from workers.kube_read import (
    HIDDEN_DATA_NOTE,
    KubeReadError,
    KubeReadRequest,
    OutputFormat,
    ReadVerb,
    read_cluster,
)
from workers.kube_tables import RESOURCES, resolve_resource

SECRET_VALUE = "hunter2-do-not-print"


@pytest.fixture
def peer() -> Iterator[KubernetesApiPeer]:
    with KubernetesApiPeer() as running:
        running.add_node("prod-master-1", role="master")
        running.add_node("prod-worker-1")
        running.add_pod("shop", "api-1", node="prod-worker-1", labels={"app": "api"},
                        logs={"main": [f"request {i}" for i in range(120)]})  # fmt: skip
        running.add_pod("shop", "db-0", node="prod-worker-1", labels={"app": "db"},
                        waiting_reason="CrashLoopBackOff", restarts=7, phase="Running")  # fmt: skip
        running.add_pod("kube-system", "coredns-1", node="prod-master-1", labels={"k8s-app": "kube-dns"})
        running.add_deployment("shop", "api", match_labels={"app": "api"}, replicas=1)
        running.add_secret("shop", "creds", data={"password": SECRET_VALUE})
        running.add_config_map("shop", "settings", data={"token": SECRET_VALUE})
        running.add_event("shop", kind="Pod", name="db-0", reason="BackOff", message="Back-off restarting")
        yield running


@pytest.fixture
def kubeconfig(peer: KubernetesApiPeer, tmp_path: Path) -> bytes:
    return peer.write_kubeconfig(tmp_path / "admin.conf").read_bytes()


def read(kubeconfig: bytes, **fields: object) -> tuple[str, list[str], tuple[str, ...]]:
    result = read_cluster(kubeconfig=kubeconfig, cluster="prod", request=KubeReadRequest(**fields))  # type: ignore[arg-type]
    return result.title, list(result.lines), result.notes


def test_get_pods_in_a_namespace_is_a_table_with_the_failing_pods_reason_peer(kubeconfig: bytes) -> None:
    title, lines, _ = read(kubeconfig, verb=ReadVerb.GET, resource="pods", namespace="shop")
    assert title == "2 pods in shop"
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[2].split()[:4] == ["db-0", "0/1", "CrashLoopBackOff", "7"]


def test_label_and_field_selectors_and_all_namespaces_reach_the_api_peer(
    kubeconfig: bytes, peer: KubernetesApiPeer
) -> None:
    _, lines, _ = read(kubeconfig, verb=ReadVerb.GET, resource="pods", all_namespaces=True,
                       label_selector="app=db", field_selector="status.phase=Running")  # fmt: skip
    assert [line.split()[:2] for line in lines] == [["NAMESPACE", "NAME"], ["shop", "db-0"]]
    [call] = peer.calls("GET", "/api/v1/pods")
    assert call.query["labelSelector"] == ["app=db"] and call.query["fieldSelector"] == [
        "status.phase=Running"
    ]
    assert call.query["limit"] == [str(defaults.KUBECTL_LIST_LIMIT)]


def test_nodes_wide_shows_roles_and_more_columns_peer(kubeconfig: bytes) -> None:
    _, lines, _ = read(kubeconfig, verb=ReadVerb.GET, resource="no", output=OutputFormat.WIDE)
    assert "INTERNAL-IP" in lines[0]
    assert lines[1].split()[:3] == ["prod-master-1", "Ready", "control-plane"]


def test_secret_and_config_map_values_never_appear_in_any_read_peer(kubeconfig: bytes) -> None:
    outputs = [
        read(kubeconfig, verb=ReadVerb.GET, resource="secrets", namespace="shop"),
        read(kubeconfig, verb=ReadVerb.GET, resource="secret", name="creds", namespace="shop",
             output=OutputFormat.YAML),
        read(kubeconfig, verb=ReadVerb.DESCRIBE, resource="secrets", name="creds", namespace="shop"),
        read(kubeconfig, verb=ReadVerb.GET, resource="cm", name="settings", namespace="shop",
             output=OutputFormat.YAML),
        read(kubeconfig, verb=ReadVerb.DESCRIBE, resource="configmaps", name="settings", namespace="shop"),
    ]  # fmt: skip
    for title, lines, notes in outputs:
        text = "\n".join([title, *lines])
        assert SECRET_VALUE not in text and "aHVudGVy" not in text, text  # neither plain nor base64
        assert "last-applied-configuration" not in text
        assert HIDDEN_DATA_NOTE in notes
    assert "  password: <hidden>" in outputs[1][1]
    assert "Keys: token (values hidden)" in outputs[4][1]


def test_logs_of_a_deployment_read_its_first_pods_tail_peer(
    kubeconfig: bytes, peer: KubernetesApiPeer
) -> None:
    title, lines, _ = read(
        kubeconfig, verb=ReadVerb.LOGS, resource="deploy", name="api", namespace="shop", tail=3
    )
    assert title.startswith("Logs of pod api-1 in shop")
    assert lines == ["request 117", "request 118", "request 119"]
    [call] = peer.calls("GET", "/log")
    assert call.query["tailLines"] == ["3"]


def test_logs_tail_is_capped_at_the_limit_peer(kubeconfig: bytes, peer: KubernetesApiPeer) -> None:
    read(kubeconfig, verb=ReadVerb.LOGS, name="api-1", namespace="shop", tail=10_000)
    [call] = peer.calls("GET", "/log")
    assert call.query["tailLines"] == [str(defaults.KUBECTL_LOG_TAIL_MAX)]


def test_describe_pod_shows_its_container_state_and_events_peer(kubeconfig: bytes) -> None:
    _, lines, _ = read(kubeconfig, verb=ReadVerb.DESCRIBE, resource="pods", name="db-0", namespace="shop")
    assert any("restarts=7" in line and "CrashLoopBackOff" in line for line in lines)
    assert lines[lines.index("Events:") + 1].split()[1:3] == ["Normal", "BackOff"]


def test_events_and_top_peer(kubeconfig: bytes, peer: KubernetesApiPeer) -> None:
    title, lines, _ = read(kubeconfig, verb=ReadVerb.EVENTS, namespace="shop")
    assert title == "1 events in shop" and "pod/db-0" in lines[1]
    _, lines, _ = read(kubeconfig, verb=ReadVerb.TOP, resource="nodes")
    assert lines[0].split() == ["NAME", "CPU", "MEMORY"] and lines[1].split() == [
        "prod-master-1",
        "250m",
        "1024Mi",
    ]
    peer.metrics_available = False
    with pytest.raises(KubeReadError, match=r"no metrics API.*metrics-server"):
        read(kubeconfig, verb=ReadVerb.TOP, resource="pods", namespace="shop")


def test_an_api_refusal_is_answered_with_its_status_and_message_peer(
    kubeconfig: bytes, peer: KubernetesApiPeer
) -> None:
    peer.fail_next(status=403, path="/api/v1/namespaces/shop/pods", body='pods is forbidden: User "kobot"')
    with pytest.raises(KubeReadError, match=r"answered \(403\): pods is forbidden") as caught:
        read(kubeconfig, verb=ReadVerb.GET, resource="pods", namespace="shop")
    assert caught.value.status == 403
    with pytest.raises(KubeReadError, match=r'\(404\): pods "gone" not found'):
        read(kubeconfig, verb=ReadVerb.GET, resource="pods", name="gone", namespace="shop")


def test_a_stalled_api_server_is_reported_within_the_deadline_peer(
    kubeconfig: bytes, peer: KubernetesApiPeer
) -> None:
    peer.slow(3)  # longer than the deadline, shorter than the peer's shutdown wait
    started = time.monotonic()
    with pytest.raises(KubeReadError, match="did not answer within 1s"):
        read_cluster(kubeconfig=kubeconfig, cluster="prod", request=KubeReadRequest(verb=ReadVerb.GET,
                     resource="pods"), timeout=1.0)  # fmt: skip
    assert time.monotonic() - started < 3


def test_an_api_server_nobody_listens_on_is_reported_at_once(tmp_path: Path) -> None:
    with KubernetesApiPeer() as peer:
        kubeconfig = peer.write_kubeconfig(tmp_path / "admin.conf").read_text()
    dead = kubeconfig.replace(peer.url, f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(KubeReadError, match="cannot reach the API server of prod"):
        read(dead.encode(), verb=ReadVerb.GET, resource="nodes")
    assert time.monotonic() - started < defaults.KUBECTL_CONNECT_TIMEOUT_SECONDS


def test_a_list_cut_at_the_limit_says_so_peer(
    kubeconfig: bytes, peer: KubernetesApiPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(3):
        peer.add_pod("bulk", f"p-{index}", node="prod-worker-1")
    _, lines, notes = read(kubeconfig, verb=ReadVerb.GET, resource="pods", namespace="bulk")
    assert len(lines) == 4 and not notes
    monkeypatch.setattr(defaults, "KUBECTL_LIST_LIMIT", 2)
    title, lines, notes = read(kubeconfig, verb=ReadVerb.GET, resource="pods", namespace="bulk")
    assert (title, len(lines)) == ("2 pods in bulk", 3)
    assert notes == ("only the first 2 were read; narrow the list",)


def test_only_get_requests_leave_a_read_and_kinds_outside_the_allow_list_are_refused_peer(
    kubeconfig: bytes, peer: KubernetesApiPeer
) -> None:
    for kind in RESOURCES:
        namespace = "shop" if kind.namespaced else None
        read(kubeconfig, verb=ReadVerb.GET, resource=kind.plural, namespace=namespace)
    assert {call.method for call in peer.requests} == {"GET"}
    for word in ("roles", "clusterrolebindings", "serviceaccounts/token", "pods/exec"):
        with pytest.raises(ValueError, match="not a kind kobot reads; allowed: pods, nodes"):
            resolve_resource(word)


@pytest.mark.parametrize("name", ["../secrets", "a/b", "x?watch=true", "Upper", ".."])
def test_a_name_that_is_no_kubernetes_name_never_becomes_a_path(name: str) -> None:
    with pytest.raises(KubeReadError, match="is no Kubernetes name"):
        KubeReadRequest(verb=ReadVerb.GET, resource="pods", name=name)
    with pytest.raises(KubeReadError, match="is no Kubernetes name"):
        KubeReadRequest(verb=ReadVerb.GET, resource="pods", namespace=name)


def test_logs_ask_for_at_most_the_byte_limit_peer(kubeconfig: bytes, peer: KubernetesApiPeer) -> None:
    # 20 lines of 100 KB each: the tail alone would be 2 MB; the API server stops at limitBytes
    peer.add_pod("shop", "chatty-1", node="prod-worker-1", logs={"main": ["x" * 100_000] * 20})
    _, lines, _ = read(kubeconfig, verb=ReadVerb.LOGS, name="chatty-1", namespace="shop", tail=20)
    [call] = peer.calls("GET", "/log")
    assert call.query["limitBytes"] == [str(defaults.KUBECTL_LOG_MAX_BYTES)]
    assert len(lines) == 6 and sum(len(line) for line in lines) <= defaults.KUBECTL_LOG_MAX_BYTES


def test_an_answer_past_the_read_limit_is_refused_not_held_peer(
    kubeconfig: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the real limit is 32 MB; a small one shows the same refusal with the peer's ordinary pod list
    monkeypatch.setattr(defaults, "KUBE_READ_MAX_BYTES", 200)
    with pytest.raises(KubeReadError, match="answered /api/v1/namespaces/shop/pods with more than"):
        read(kubeconfig, verb=ReadVerb.GET, resource="pods", namespace="shop")
    monkeypatch.setattr(defaults, "KUBE_READ_MAX_BYTES", 32 * 1024 * 1024)
    title, _, _ = read(kubeconfig, verb=ReadVerb.GET, resource="pods", namespace="shop")
    assert title.endswith("pods in shop"), "the client still works after a refused answer"
