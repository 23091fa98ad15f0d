"""The health check against the Kubernetes API peer in bad states, a TLS serving certificate the test
made, and a real etcd with a member down: every problem is found at its level, and nothing else is."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kobot import defaults
from tests.health.peer import HealthPeer
from tests.workers.test_etcd_real import start_etcd
from workers.etcd import EtcdAccess
from workers.health_cards import report_card
from workers.health_check import HealthArea, HealthLevel, HealthReport, ListBounds, check_cluster


def healthy(peer: HealthPeer, nodes: int = 3) -> None:
    peer.add_node("prod-master-1", role="master")
    peer.add_pod("kube-system", "kube-apiserver-prod-master-1", node="prod-master-1",
                 labels={"component": "kube-apiserver", "tier": "control-plane"}, mirror=True)  # fmt: skip
    for i in range(1, nodes):
        peer.add_node(f"prod-worker-{i}")
        peer.add_pod("shop", f"api-{i}", node=f"prod-worker-{i}", labels={"app": "api"})
    peer.add_volume_claim("shop", "data-0")


def check(
    peer: HealthPeer, tmp_path: Path, *, etcd: EtcdAccess | None = None, timeout: float = 10.0
) -> HealthReport:
    kubeconfig = peer.write_kubeconfig(tmp_path / "admin.conf").read_bytes()
    return check_cluster(
        kubeconfig=kubeconfig, cluster="prod", etcd_access=etcd, now=datetime.now(UTC), timeout=timeout
    )


def found(report: HealthReport) -> set[tuple[str, str, str, str]]:
    return {(f.area.value, f.subject, f.problem, f.level.value) for f in report.findings}


@pytest.fixture
def peer() -> Iterator[HealthPeer]:
    with HealthPeer() as server:
        yield server


def test_peer_a_healthy_cluster_is_all_ok_and_only_read(peer: HealthPeer, tmp_path: Path) -> None:
    healthy(peer)
    report = check(peer, tmp_path)
    assert report.findings == ()
    # 3 nodes, 3 pods, readiness, 1 PVC, versions without skew
    assert report.ok == 9
    assert report.skipped == ("etcd: kobot holds no etcd access for this cluster",)
    assert {r.method for r in peer.requests} == {"GET"}
    card = report_card(report)
    assert card.title == "Health of prod: all 9 checks ok" and card.tone.value == "success"


def test_peer_every_bad_state_is_found_at_its_level(peer: HealthPeer, tmp_path: Path) -> None:
    healthy(peer)
    peer.set_ready("prod-worker-1", False)
    peer.set_condition("prod-worker-2", "DiskPressure", True, message="ephemeral storage low")
    peer.add_pod("shop", "db-0", node="prod-worker-2", waiting_reason="CrashLoopBackOff", restarts=12)
    peer.add_pod("shop", "cache-0", node="prod-worker-2", restarts=defaults.HEALTH_POD_RESTARTS_WARNING)
    peer.add_pod("shop", "batch-1", node="prod-worker-2", phase="Succeeded")
    peer.add_pod("kube-system", "kube-scheduler-prod-master-1", node="prod-master-1",
                 labels={"component": "kube-scheduler"}, waiting_reason="CrashLoopBackOff")  # fmt: skip
    peer.add_volume_claim("shop", "data-1", phase="Pending")
    peer.set_kubelet_version("prod-worker-2", "v1.29.8")
    peer.readyz_failing.add("etcd")

    report = check(peer, tmp_path)

    assert found(report) == {
        ("nodes", "prod-worker-1", "NotReady", "critical"),
        ("nodes", "prod-worker-2", "DiskPressure", "warning"),
        ("pods", "shop/db-0", "CrashLoopBackOff", "critical"),
        ("pods", "shop/cache-0", "restarting", "warning"),
        ("control plane", "kube-system/kube-scheduler-prod-master-1", "CrashLoopBackOff", "critical"),
        ("control plane", "API server", "not ready", "critical"),
        ("storage", "shop/data-1", "Pending", "warning"),
        ("versions", "v1.29.8", "skew", "warning"),
    }
    [readiness] = [f for f in report.findings if f.subject == "API server"]
    assert readiness.detail == "failed: etcd"
    assert report.level is HealthLevel.CRITICAL
    assert [f.level for f in report.findings][:4] == [HealthLevel.CRITICAL] * 4, "worst first"
    card = report_card(report)
    assert card.title == "Health of prod: 4 critical, 4 warnings" and card.tone.value == "danger"
    assert [(f.label, f.value) for f in card.fields] == [
        ("OK", str(report.ok)),
        ("Warning", "4"),
        ("Critical", "4"),
    ]
    assert card.body is not None and "✖ nodes · prod-worker-1: NotReady (KubeletNotReady)" in card.body
    assert "prod-worker-2 run kubelet v1.29.8; the API server runs v1.30.2" in card.body


def test_peer_a_kubelet_newer_than_the_api_server_or_too_old_is_critical(
    peer: HealthPeer, tmp_path: Path
) -> None:
    healthy(peer)
    peer.set_kubelet_version("prod-worker-1", "v1.31.0")
    peer.set_kubelet_version("prod-worker-2", "v1.26.3")
    assert {(f.subject, f.problem, f.level) for f in check(peer, tmp_path).findings} == {
        ("v1.31.0", "newer than API server", HealthLevel.CRITICAL),
        ("v1.26.3", "unsupported skew", HealthLevel.CRITICAL),
    }


@pytest.mark.parametrize(
    ("days", "level", "detail"),
    [
        (5, HealthLevel.CRITICAL, "in 5 days"),
        (20, HealthLevel.WARNING, "in 20 days"),
    ],
)
def test_peer_the_api_servers_serving_certificate_is_read_from_the_tls_handshake(
    tmp_path: Path, days: int, level: HealthLevel, detail: str
) -> None:
    with HealthPeer(certificate_days=days) as peer:
        healthy(peer)
        report = check(peer, tmp_path)
    certs = [f for f in report.findings if f.area is HealthArea.CERTIFICATES]
    # the same certificate is the kubeconfig's CA here (a self-signed serving certificate)
    assert {(f.subject, f.problem, f.level) for f in certs} == {
        (f"API server serving certificate (127.0.0.1:{peer.port})", "expires", level),
        ("cluster CA (kubeconfig)", "expires", level),
    }
    assert all(detail in f.detail for f in certs)
    assert len(report.findings) == 2 and report.ok == 9, "the API itself was read over TLS"


def test_peer_an_expired_serving_certificate_is_named_and_the_api_reads_say_why_they_failed(
    tmp_path: Path,
) -> None:
    with HealthPeer(certificate_days=-1) as peer:
        healthy(peer)
        report = check(peer, tmp_path)
    assert found(report) == {
        ("certificates", f"API server serving certificate (127.0.0.1:{peer.port})", "expired", "critical"),
        ("certificates", "cluster CA (kubeconfig)", "expired", "critical"),
        ("control plane", "API server", "unreachable", "critical"),
    }
    [api] = [f for f in report.findings if f.subject == "API server"]
    assert "certificate kobot cannot trust (certificate has expired)" in api.detail


def test_peer_a_far_certificate_counts_as_ok(tmp_path: Path) -> None:
    with HealthPeer(certificate_days=365) as peer:
        healthy(peer)
        report = check(peer, tmp_path)
    assert report.findings == () and len(report.certificates) == 2 and report.ok == 11


def test_peer_an_etcd_member_down_is_critical_and_the_healthy_one_ok_real_etcd(
    peer: HealthPeer, tmp_path: Path
) -> None:
    healthy(peer)
    up = start_etcd(data_dir=tmp_path / "m1", name="m1")
    down = start_etcd(data_dir=tmp_path / "m2", name="m2")
    down.stop()
    try:
        report = check(peer, tmp_path, etcd=EtcdAccess(endpoints=(up.client_url, down.client_url)))
    finally:
        up.stop()
    assert found(report) == {("etcd", down.client_url, "unhealthy", "critical")}
    assert report.ok == 10, "the 9 of a healthy cluster and the member that is up"
    assert not any(s.startswith("etcd") for s in report.skipped)


def test_peer_an_api_server_that_stalls_is_reported_within_the_deadline(
    peer: HealthPeer, tmp_path: Path
) -> None:
    healthy(peer)
    peer.slow(2.5)
    started = time.monotonic()
    report = check(peer, tmp_path, timeout=1.0)
    assert time.monotonic() - started < 3.0
    assert found(report) == {("control plane", "API server", "unreachable", "critical")}
    assert "did not answer within 1s" in report.findings[0].detail
    peer.slow(0)


def test_peer_an_api_server_that_refuses_the_token_is_named(peer: HealthPeer, tmp_path: Path) -> None:
    healthy(peer)
    kubeconfig = peer.write_kubeconfig(tmp_path / "admin.conf").read_text().replace(peer.token, "wrong")
    report = check_cluster(
        kubeconfig=kubeconfig.encode(), cluster="prod", etcd_access=None, now=datetime.now(UTC), timeout=5
    )
    assert [(f.problem, f.level) for f in report.findings] == [("unreachable", HealthLevel.CRITICAL)]
    assert "(401)" in report.findings[0].detail


def test_peer_lists_are_read_page_by_page_and_cut_at_their_bound(peer: HealthPeer, tmp_path: Path) -> None:
    healthy(peer, nodes=8)
    peer.add_pod("shop", "zz-broken", node="prod-worker-1", waiting_reason="CrashLoopBackOff")
    kubeconfig = peer.write_kubeconfig(tmp_path / "admin.conf").read_bytes()

    def look(bounds: ListBounds) -> HealthReport:
        return check_cluster(
            kubeconfig=kubeconfig, cluster="prod", etcd_access=None, now=datetime.now(UTC), bounds=bounds
        )

    whole = look(ListBounds(page=3, most=100))
    assert ("pods", "shop/zz-broken", "CrashLoopBackOff", "critical") in found(whole), "found on page 3"
    pages = [r.query for r in peer.calls("GET", "/api/v1/pods")]
    assert [q.get("limit") for q in pages] == [["3"], ["3"], ["3"]]
    assert [q.get("continue") for q in pages] == [None, ["3"], ["6"]]
    assert not any("cut at" in what for what in whole.skipped)

    cut = look(ListBounds(page=3, most=5))
    assert "nodes: cut at 5" in cut.skipped and "pods: cut at 5" in cut.skipped
    assert "PVCs: cut at 5" not in cut.skipped
    assert ("pods", "shop/zz-broken", "CrashLoopBackOff", "critical") not in found(cut)
    assert {HealthArea.PODS, HealthArea.NODES} <= cut.unseen, "what was known of the rest still stands"
    assert "skipped pods: cut at 5" in (report_card(cut).footer or "")
    assert len(peer.calls("GET", "/api/v1/pods")) == 3 + 2, "no page past the bound is asked for"
