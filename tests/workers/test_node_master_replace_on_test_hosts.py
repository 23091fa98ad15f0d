"""A master replace's first half, `node_remove.yml` for the old master, on three SSH test hosts that run
a real three-member etcd (this machine's etcd and etcdctl binaries, kubeadm's certificate layout), in
`--check` mode (kubeadm cannot run here): the member list and every member's health are read from a
member that stays, the membership change is shown, and a removal that would cost etcd its majority is
refused with the reason before any node is cordoned. The job-level order (old master leaves, then its
successor joins) is proven in tests/workers/test_node_replace_peer.py."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kobot.job_records import JobEvent, JobEventType
from tests.hosts.lab import HostLab
from tests.playbooks.etcd_lab import ETCD_CLIENT_ENV, ETCD_PKI, etcd_pki, install_etcd, stop_etcd
from tests.playbooks.roles_lab import WITHOUT_HOST_FEATURES, RolesLab, open_roles_lab

NAMES = ("master-1", "master-2", "master-3")
ETCD_READY_ATTEMPTS = 100
"""Polls (0.2 s apart) for the three members to elect a leader and answer."""
CHECK_TASK = "Refuse to drop etcd below its majority"
SHOW_TASK = "Show the etcd membership change"


@pytest.fixture(scope="module")
def etcd_lab(host_lab: HostLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RolesLab]:
    """Three masters, one etcd member each, peers on the hosts' own addresses."""
    work = tmp_path_factory.mktemp("replace-lab")
    with open_roles_lab(host_lab, work, names=NAMES, offline_registry=None, etcd=NAMES) as lab:
        pki = etcd_pki(work / "etcd-pki", addresses=tuple(host.address for host in lab.hosts.values()))
        for name in NAMES:
            install_etcd(lab, name, pki=pki)
        for name in NAMES:
            _start_member(lab, name)
        _wait_until_healthy(lab, count=3)
        yield lab


def _start_member(lab: RolesLab, name: str) -> None:
    address = lab.hosts[name].address
    cluster = ",".join(f"{n}=http://{h.address}:2380" for n, h in lab.hosts.items())
    lab.ssh(
        name,
        f"setsid -f /usr/local/bin/etcd --name {name} --data-dir /var/lib/etcd"
        f" --listen-client-urls https://127.0.0.1:2379,https://{address}:2379"
        f" --advertise-client-urls https://{address}:2379"
        f" --listen-peer-urls http://{address}:2380 --initial-advertise-peer-urls http://{address}:2380"
        f" --initial-cluster {cluster} --initial-cluster-state new"
        f" --cert-file {ETCD_PKI}/server.crt --key-file {ETCD_PKI}/server.key --client-cert-auth"
        f" --trusted-ca-file {ETCD_PKI}/ca.crt >>/var/log/etcd.log 2>&1 </dev/null",
    )


def _health(lab: RolesLab) -> dict[str, bool]:
    """endpoint -> healthy, as master-1 sees every member."""
    out = lab.ssh(
        "master-1",
        f"{ETCD_CLIENT_ENV} ETCDCTL_DIAL_TIMEOUT=2s /usr/local/bin/etcdctl endpoint health --cluster"
        " -w json 2>/dev/null",
        check=False,
    )
    try:
        return {e["endpoint"]: bool(e["health"]) for e in json.loads(out or "[]")}
    except json.JSONDecodeError:
        return {}


def _wait_until_healthy(lab: RolesLab, *, count: int) -> None:
    for _ in range(ETCD_READY_ATTEMPTS):
        if sum(_health(lab).values()) >= count:
            return
        subprocess.run(["sleep", "0.2"], check=True)
    raise AssertionError(lab.ssh("master-1", "tail -20 /var/log/etcd.log"))


def _members(lab: RolesLab) -> list[str]:
    out = lab.ssh("master-1", f"{ETCD_CLIENT_ENV} /usr/local/bin/etcdctl member list -w json")
    return sorted(m["name"] for m in json.loads(out)["members"])


def _remove_in_check_mode(
    lab: RolesLab, tmp_path: Path, node: str
) -> tuple[bool, list[JobEvent], str | None]:
    result, events = lab.run(
        "node_remove.yml",
        extravars={
            **WITHOUT_HOST_FEATURES,
            "nodes_to_remove": [node],
            # what the replace job passes: the old master leaves first, its successor joins after
            "replacement_joins_after": True,
            "kubeconfig_path": str(tmp_path / "admin.conf"),
            "etcdctl_bin": "/usr/local/bin/etcdctl",
            "etcdctl_dial_timeout": "2s",
        },
        check_mode=True,
    )
    return result.succeeded, events, f"{result.failed_task}: {result.error}"


def _message(events: list[JobEvent], task: str) -> str:
    return next(e.message or "" for e in events if e.task == task and e.message)


def test_master_leave_refused_below_quorum_then_shown_against_real_etcd_check_mode_on_test_hosts(
    etcd_lab: RolesLab, tmp_path: Path
) -> None:
    lab = etcd_lab
    # master-2 is down: master-3 leaving would leave master-1 alone of the two members that stay
    stop_etcd(lab, "master-2")
    _wait_until_healthy(lab, count=2)  # a new leader, if master-2 led
    ok, events, error = _remove_in_check_mode(lab, tmp_path, "master-3")

    assert not ok
    assert "only 1 healthy member(s) stay (master-1)" in (error or ""), error
    assert "its 3 members need 2 for a membership change" in (error or "")
    started = {e.task for e in events if e.type is JobEventType.TASK_STARTED}
    assert "Cordon the node" not in started and "Run kubeadm reset" not in started, "refused before any drain"
    assert _members(lab) == list(NAMES)

    # master-2 back, master-3 dead (why it is replaced): the two that stay hold the majority
    _start_member(lab, "master-2")
    stop_etcd(lab, "master-3")
    _wait_until_healthy(lab, count=2)
    ok, events, error = _remove_in_check_mode(lab, tmp_path, "master-3")

    assert ok, error
    checked = _message(events, CHECK_TASK)
    assert "etcd members 3 → 2: master-3 leaves; 2 healthy member(s) stay (master-1, master-2)" in checked
    assert "the majority is 2" in checked
    assert _message(events, SHOW_TASK).startswith("etcd members 3 → 2: master-3 removed by master-1")
    order = [e.task for e in events if e.type is JobEventType.TASK_STARTED]
    assert order.index(CHECK_TASK) < order.index("Cordon the node") < order.index(SHOW_TASK)
    skipped = {(e.host, e.task) for e in events if e.type is JobEventType.TASK_SKIPPED}
    assert ("master-3", "Remove this node's etcd member") in skipped, "check mode removes nothing"
    assert _members(lab) == list(NAMES)
