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
from tests.playbooks.test_roles_on_test_hosts import ETCD_BINARIES, ETCD_CLIENT_ENV, ETCD_PKI, Lab
from workers.inventory import render_inventory, write_inventory

NAMES = ("master-1", "master-2", "master-3")
ETCD_READY_ATTEMPTS = 100
"""Polls (0.2 s apart) for the three members to elect a leader and answer."""
WITHOUT_HOST_FEATURES = {
    "kobot_manage_services": False,
    "kobot_manage_packages": False,
    "kobot_manage_kernel": False,
}
CHECK_TASK = "Refuse to drop etcd below its majority"
SHOW_TASK = "Show the etcd membership change"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=30, check=True)


def _etcd_pki(directory: Path, addresses: list[str]) -> Path:
    """A CA, a server certificate for every member's address and a client certificate, kubeadm's names."""
    directory.mkdir()
    new_key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl("req", "-x509", *new_key, "-days", "2", "-subj", "/CN=etcd-ca", "-keyout", "ca.key",
             "-out", "ca.crt", cwd=directory)  # fmt: skip
    sans = ",".join(f"IP:{a}" for a in ["127.0.0.1", *addresses])
    for name, usage in (("server", "serverAuth"), ("healthcheck-client", "clientAuth")):
        (directory / f"{name}.cnf").write_text(f"subjectAltName={sans}\nextendedKeyUsage={usage}\n")
        _openssl("req", *new_key, "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 cwd=directory)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", f"{name}.cnf", "-out", f"{name}.crt", cwd=directory)  # fmt: skip
    return directory


@pytest.fixture(scope="module")
def etcd_lab(host_lab: HostLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Three masters, one etcd member each, peers on the hosts' own addresses."""
    started = host_lab.start(count=len(NAMES))
    work = tmp_path_factory.mktemp("replace-lab")
    try:
        hosts = dict(zip(NAMES, started, strict=True))
        inventory = render_inventory(
            nodes=[(name, "master", host.address) for name, host in hosts.items()],
            ssh_user=started[0].user,
            ssh_key_path=started[0].key_path,
            known_hosts_path=started[0].known_hosts_path,
            cluster_vars={
                "cluster_name": "lab",
                "ansible_pipelining": True,
                "apiserver_loadbalancer_vip": started[0].address.rsplit(".", 1)[0] + ".200",
                "apiserver_loadbalancer_interface": "eth0",
            },
        )
        lab = Lab(hosts=hosts, inventory=write_inventory(work / "inventory.yml", inventory), work=work)
        pki = _etcd_pki(work / "etcd-pki", [h.address for h in started])
        for name in NAMES:
            lab.ssh(name, f"mkdir -p {ETCD_PKI} && chmod 700 {ETCD_PKI}")
            for binary in ETCD_BINARIES:
                lab.copy_in(name, source=binary, dest=f"/usr/local/bin/{binary.name}")
            for file in (
                "ca.crt",
                "server.crt",
                "server.key",
                "healthcheck-client.crt",
                "healthcheck-client.key",
            ):
                lab.copy_in(name, source=pki / file, dest=f"{ETCD_PKI}/{file}", mode="0600")
        for name in NAMES:
            _start_member(lab, name)
        _wait_until_healthy(lab, count=3)
        yield lab
    finally:
        for host in started:
            host_lab.stop(host)


def _start_member(lab: Lab, name: str) -> None:
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


def _stop_member(lab: Lab, name: str) -> None:
    lab.ssh(
        name,
        "pkill -x etcd; for i in $(seq 50); do pgrep -x etcd >/dev/null || exit 0; sleep 0.1; done; exit 1",
    )


def _health(lab: Lab) -> dict[str, bool]:
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


def _wait_until_healthy(lab: Lab, *, count: int) -> None:
    for _ in range(ETCD_READY_ATTEMPTS):
        if sum(_health(lab).values()) >= count:
            return
        subprocess.run(["sleep", "0.2"], check=True)
    raise AssertionError(lab.ssh("master-1", "tail -20 /var/log/etcd.log"))


def _members(lab: Lab) -> list[str]:
    out = lab.ssh("master-1", f"{ETCD_CLIENT_ENV} /usr/local/bin/etcdctl member list -w json")
    return sorted(m["name"] for m in json.loads(out)["members"])


def _remove_in_check_mode(lab: Lab, tmp_path: Path, node: str) -> tuple[bool, list[JobEvent], str | None]:
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
    etcd_lab: Lab, tmp_path: Path
) -> None:
    lab = etcd_lab
    # master-2 is down: master-3 leaving would leave master-1 alone of the two members that stay
    _stop_member(lab, "master-2")
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
    _stop_member(lab, "master-3")
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
