"""The roles run against the real SSH test hosts (Debian 12 roots in network namespaces, no systemd).

What can execute there runs for real twice, and the second run must change nothing. The inventory
turns off what those hosts lack (`kobot_manage_services`, `kobot_manage_packages`,
`kobot_manage_kernel` false) and each such test says so in its name. What needs kubeadm, a kernel
of its own or the offline package mirror runs in `--check` mode and its name says "check mode".
"""

from __future__ import annotations

import hashlib
import json
import secrets
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kobot.automation_yaml import load_yaml
from kobot.job_records import JobEvent, JobEventType
from tests.hosts.lab import HostLab
from tests.playbooks.etcd_lab import (
    ETCD_CLIENT_ENV,
    ETCD_PKI,
    MANIFESTS,
    RUNNER_PATH,
    STATIC_POD_RUNNER,
    etcd_pki,
    install_etcd,
    start_etcd,
    stop_etcd,
)
from tests.playbooks.roles_lab import (
    LAB_MIRRORED_REGISTRIES,
    LAB_OFFLINE_REGISTRY,
    WITHOUT_HOST_FEATURES,
    RolesLab,
    changed_tasks,
    open_roles_lab,
    wait_until_listening,
)
from workers.ansible import PlaybookResult
from workers.inventory import write_inventory

NAMES = ("master-1", "master-2", "worker-1")
"""Two masters (so the load balancer plays) and one worker, one test host each; etcd on master-1 alone."""


@pytest.fixture(scope="module")
def lab(host_lab: HostLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RolesLab]:
    """Hosts of this module only, so what the roles leave behind meets no other test."""
    with open_roles_lab(host_lab, tmp_path_factory.mktemp("roles-lab"), names=NAMES) as roles_lab:
        yield roles_lab


def _twice(
    lab: RolesLab, playbook: str, **kwargs: Any
) -> tuple[PlaybookResult, PlaybookResult, list[JobEvent]]:
    first, events = lab.run(playbook, **kwargs)
    assert first.succeeded, (first.failed_task, first.failed_host, first.error)
    second, again = lab.run(playbook, **kwargs)
    assert second.succeeded, (second.failed_task, second.failed_host, second.error)
    assert second.changed == 0, changed_tasks(again)
    return first, second, events


def test_base_os_files_real_on_test_hosts_idempotent_without_services_packages_kernel(lab: RolesLab) -> None:
    first, _, events = _twice(lab, "base_os.yml", extravars=WITHOUT_HOST_FEATURES)

    assert first.changed > 0
    changed = changed_tasks(events)
    for name in NAMES:
        assert f"{name}: Write kernel parameters" in changed
        assert f"{name}: Name every cluster node in /etc/hosts" in changed
        sysctl = lab.ssh(name, "cat /etc/sysctl.d/99-kubernetes.conf")
        assert "net.ipv4.ip_forward = 1" in sysctl
        assert "br_netfilter" in lab.ssh(name, "cat /etc/modules-load.d/kubernetes.conf")
        hosts_file = lab.ssh(name, "cat /etc/hosts")
        block = hosts_file.split("# BEGIN kobot cluster lab\n")[1].split("# END kobot cluster lab")[0]
        assert block.splitlines() == [f"{lab.hosts[n].address} {n}" for n in NAMES]
        assert hosts_file.startswith("127.0.0.1 localhost"), "what was in /etc/hosts stays"


def test_container_runtime_config_real_on_test_hosts_idempotent_without_services_packages(
    lab: RolesLab,
) -> None:
    first, _, _ = _twice(lab, "container_runtime.yml", extravars=WITHOUT_HOST_FEATURES)

    assert first.changed > 0
    for name in NAMES:
        config = lab.ssh(name, "cat /etc/containerd/config.toml")
        assert 'sandbox_image = "10.10.0.5:5000/pause:3.10"' in config
        assert "SystemdCgroup = true" in config
        mirror = lab.ssh(name, "cat /etc/containerd/certs.d/registry.k8s.io/hosts.toml")
        assert 'server = "http://10.10.0.5:5000"' in mirror
        assert lab.ssh(name, "ls /etc/containerd/certs.d").split() == sorted(
            [LAB_OFFLINE_REGISTRY, *LAB_MIRRORED_REGISTRIES]
        )
        assert "runtime-endpoint: unix:///run/containerd/containerd.sock" in lab.ssh(
            name, "cat /etc/crictl.yaml"
        )


def test_load_balancer_config_real_on_test_hosts_idempotent_without_services_packages(lab: RolesLab) -> None:
    vrrp_password = secrets.token_hex(4)
    first, _, events = _twice(
        lab,
        "load_balancer.yml",
        extravars=WITHOUT_HOST_FEATURES,
        secrets={"KOBOT_KEEPALIVED_AUTH": vrrp_password},
    )

    assert first.changed > 0
    assert {event.host for event in events if event.type is JobEventType.TASK_CHANGED} == {
        "master-1",
        "master-2",
    }
    for name in ("master-1", "master-2"):
        haproxy = lab.ssh(name, "cat /etc/haproxy/haproxy.cfg")
        for master in ("master-1", "master-2"):
            assert f"server {master} {lab.hosts[master].address}:6443" in haproxy
        keepalived = lab.ssh(
            name, "stat -c %a /etc/keepalived/keepalived.conf; cat /etc/keepalived/keepalived.conf"
        )
        assert keepalived.startswith("600\n")
        assert f"auth_pass {vrrp_password}" in keepalived
    assert "BACKUP" in lab.ssh("master-2", "cat /etc/keepalived/keepalived.conf")
    assert lab.ssh("worker-1", "ls /etc/keepalived /etc/haproxy 2>/dev/null; true") == ""
    assert not any(vrrp_password in event.model_dump_json() for event in events)
    leaked = subprocess.run(
        ["grep", "-rl", vrrp_password, str(lab.work / "jobs")], capture_output=True, text=True, check=False
    )
    assert leaked.stdout == "", "the VRRP password must not stay in the job artifacts"


# --- etcd: the real etcd and etcdctl binaries of this machine, copied into the masters --------------


@pytest.fixture(scope="module")
def etcd_masters(lab: RolesLab) -> Iterator[list[str]]:
    """etcd and etcdctl on both masters, kubeadm's etcd certificates in place, etcd running on master-1."""
    pki = etcd_pki(lab.work / "etcd-pki")
    masters = ["master-1", "master-2"]
    for name in masters:
        install_etcd(lab, name, pki=pki)
    start_etcd(lab, "master-1")
    try:
        yield masters
    finally:
        for name in masters:
            lab.ssh(name, "pkill -x etcd; true", check=False)


def _etcd_get(lab: RolesLab, name: str, key: str) -> str:
    return lab.ssh(name, f"{ETCD_CLIENT_ENV} /usr/local/bin/etcdctl get --print-value-only {key}").strip()


def test_etcd_backup_real_on_test_hosts_idempotent(lab: RolesLab, etcd_masters: list[str]) -> None:
    lab.ssh("master-1", f"{ETCD_CLIENT_ENV} /usr/local/bin/etcdctl put /kobot/before-backup kept")
    dest = lab.work / "backups" / "lab-1.db"
    extravars = {
        **WITHOUT_HOST_FEATURES,
        "etcd_backup_dest": str(dest),
        "etcd_snapshot_name": "lab-1.db",
        "etcdctl_bin": "/usr/local/bin/etcdctl",
    }

    _, _, events = _twice(lab, "etcd_backup.yml", extravars=extravars)

    assert {"master-1: Take the snapshot", "master-1: Fetch the snapshot to kobot"} <= changed_tasks(events)
    assert {event.host for event in events if event.host} == {"master-1"}
    digest = hashlib.sha256(dest.read_bytes()).hexdigest()
    assert (dest.parent / "lab-1.db.sha256").read_text() == f"{digest}  lab-1.db\n"
    assert oct(dest.stat().st_mode & 0o777) == "0o600"
    assert lab.ssh("master-1", "stat -c %a /var/backups/etcd/lab-1.db").strip() == "600"
    status = subprocess.run(
        ["etcdctl", "snapshot", "status", str(dest), "-w", "json"],
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(status.stdout)["totalKey"] >= 1
    assert not any("PRIVATE KEY" in event.model_dump_json() for event in events)


def test_etcd_restore_real_on_test_hosts_stops_api_servers_first_and_a_retry_restores_nothing_again(
    lab: RolesLab, etcd_masters: list[str], tmp_path: Path
) -> None:
    # A one-member etcd (master-1); both masters run an API server that must stop first.
    inventory = load_yaml(lab.inventory.read_text())  # keeps the !unsafe tags kobot wrote
    inventory["all"]["children"]["etcd"]["hosts"] = {"master-1": None}
    restore_inventory = write_inventory(tmp_path / "inventory.yml", inventory)
    etcd_command = (
        "setsid -f /usr/local/bin/etcd --name master-1 --data-dir /var/lib/etcd"
        " --listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379"
        " --listen-peer-urls http://127.0.0.1:2380"
        f" --cert-file {ETCD_PKI}/server.crt --key-file {ETCD_PKI}/server.key --client-cert-auth"
        f" --trusted-ca-file {ETCD_PKI}/ca.crt >>/var/log/etcd.log 2>&1 </dev/null"
    )
    lab.ssh("master-1", f"{ETCD_CLIENT_ENV} /usr/local/bin/etcdctl put /kobot/in-snapshot yes")
    lab.ssh("master-1", f"{ETCD_CLIENT_ENV} /usr/local/bin/etcdctl snapshot save /root/snap.db >/dev/null")
    snapshot = tmp_path / "snap.db"
    snapshot.write_bytes(subprocess.run([*lab.hosts["master-1"].ssh_args(), "cat /root/snap.db"],
                                        capture_output=True, timeout=30, check=True).stdout)  # fmt: skip
    lab.ssh("master-1", f"{ETCD_CLIENT_ENV} /usr/local/bin/etcdctl put /kobot/after-snapshot lost")
    stop_etcd(lab, "master-1")
    for name in etcd_masters:
        pods = "etcd kube-apiserver" if name == "master-1" else "kube-apiserver"
        lab.ssh(
            name, f"mkdir -p {MANIFESTS} && for p in {pods}; do echo 'kind: Pod' > {MANIFESTS}/$p.yaml; done"
        )
        runner = STATIC_POD_RUNNER.format(etcd=etcd_command if name == "master-1" else "true")
        lab.ssh(
            name,
            f"cat > {RUNNER_PATH} && setsid -f sh {RUNNER_PATH} >/dev/null 2>&1 </dev/null",
            stdin=runner,
        )
    wait_until_listening(lab, "master-1", 2379)
    extravars = {
        **WITHOUT_HOST_FEATURES,
        "etcd_restore_snapshot": str(snapshot),
        "etcd_restore_sha256": hashlib.sha256(snapshot.read_bytes()).hexdigest(),
        "etcd_snapshot_name": "lab-restore.db",
        "etcdutl_bin": "/usr/local/bin/etcdctl",
        # this machine's etcdctl is 3.4, which restores without --bump-revision/--mark-compacted
        "etcd_restore_bump_revision": 0,
        "etcd_restore_pod_timeout_seconds": 30,
    }
    try:
        result, events = lab.run("etcd_restore.yml", extravars=extravars, inventory=restore_inventory)
        assert result.succeeded, (result.failed_task, result.failed_host, result.error)
        order = [
            (e.task, e.host) for e in events if e.type in (JobEventType.TASK_CHANGED, JobEventType.TASK_OK)
        ]
        stops = [
            i
            for i, (task, _) in enumerate(order)
            if task == "Wait until the API server and etcd have stopped"
        ]
        restore = order.index(("Restore the snapshot into a new data directory", "master-1"))
        assert len(stops) == 2 and max(stops) < restore, "every API server stops before the restore"
        assert _etcd_get(lab, "master-1", "/kobot/in-snapshot") == "yes"
        assert _etcd_get(lab, "master-1", "/kobot/after-snapshot") == ""
        assert lab.ssh("master-1", f"ls {MANIFESTS}").split() == ["etcd.yaml", "kube-apiserver.yaml"]
        assert lab.ssh("master-2", f"ls {MANIFESTS}").split() == ["kube-apiserver.yaml"]

        again, again_events = lab.run("etcd_restore.yml", extravars=extravars, inventory=restore_inventory)
        assert again.succeeded, (again.failed_task, again.failed_host, again.error)
        data_tasks = {
            "Restore the snapshot into a new data directory",
            "Move the old data aside",
            "Put the restored data in place",
        }
        changed_again = {e.task for e in again_events if e.type is JobEventType.TASK_CHANGED}
        restored_again = data_tasks & changed_again
        assert restored_again == set(), "a retry of the same restore replaces no data again"
        assert _etcd_get(lab, "master-1", "/kobot/in-snapshot") == "yes"
    finally:
        for name in etcd_masters:
            lab.ssh(
                name,
                f"pkill -f '^sh {RUNNER_PATH}'; pkill -f '^python3 -m http.server'; rm -rf {MANIFESTS}; true",
            )
        stop_etcd(lab, "master-1")


def test_cluster_delete_real_on_test_hosts_idempotent_without_services(lab: RolesLab) -> None:
    """No node here ever joined (no kubeadm), so the reset itself is skipped; the leftovers go."""
    for name in NAMES:
        lab.ssh(
            name,
            "mkdir -p /etc/cni/net.d /root/.kube && echo '{}' > /etc/cni/net.d/10-flannel.conflist"
            " && echo 'kind: Config' > /root/.kube/config"
            " && { grep -q 'BEGIN kobot cluster lab' /etc/hosts"
            " || printf '# BEGIN kobot cluster lab\\n10.0.0.1 gone\\n# END kobot cluster lab\\n'"
            " >> /etc/hosts; }",
        )

    first, _, events = _twice(lab, "cluster_delete.yml", extravars=WITHOUT_HOST_FEATURES)

    assert first.changed > 0
    skipped = {(e.host, e.task) for e in events if e.type is JobEventType.TASK_SKIPPED}
    assert {(name, "Run kubeadm reset") for name in NAMES} <= skipped
    for name in NAMES:
        left = lab.ssh(
            name, "ls -d /etc/cni/net.d /root/.kube/config 2>/dev/null; grep -c kobot /etc/hosts; true"
        )
        assert left.split() == ["0"]
        assert lab.ssh(name, "head -1 /etc/hosts").startswith("127.0.0.1 localhost")


def test_node_add_check_mode_on_test_hosts_without_services_or_kube_packages(lab: RolesLab) -> None:
    """base OS, runtime, packages, load balancer, control-plane join (serial) and worker join in
    `--check` mode: kubeadm cannot run here and the mirror holding kubelet/kubeadm/kubectl does not
    exist (`kube_packages: []`); chrony, containerd, haproxy and keepalived come from Debian's lists."""
    result, events = lab.run(
        "node_add.yml",
        extravars={
            "nodes_to_add": ["master-2", "worker-1"],
            "kobot_manage_services": False,
            "kube_packages": [],
            "kube_packages_cri_tools": [],
        },
        secrets={"KOBOT_KEEPALIVED_AUTH": secrets.token_hex(4)},
        check_mode=True,
    )

    assert result.succeeded, (result.failed_task, result.failed_host, result.error)
    would_change = changed_tasks(events)
    for name in ("master-2", "worker-1"):
        assert f"{name}: Install containerd" in would_change
        assert f"{name}: Install the time sync daemon" in would_change
        assert lab.ssh(name, "command -v containerd chronyd; true") == "", "check mode installs nothing"
    assert "master-1: Install containerd" not in would_change, "existing nodes get no new runtime"
    assert {
        "master-1: Install haproxy and keepalived",
        "master-2: Install haproxy and keepalived",
    } <= would_change
    seen = {(event.host, event.task) for event in events}
    assert ("master-2", "Run kubeadm join") in seen and ("worker-1", "Run kubeadm join") in seen
    assert ("master-1", "Run kubeadm join") not in seen and ("master-1", "Run kubeadm init") not in seen
    assert not [event for event in events if event.type is JobEventType.TASK_FAILED]


def test_node_remove_real_on_test_hosts_resets_nothing_when_the_drain_fails(
    lab: RolesLab, tmp_path: Path
) -> None:
    """The API cannot be reached (a closed loopback port), so cordon/drain fail: the play stops before
    kubeadm reset, the node keeps its files, the other nodes keep its name and kobot keeps its key."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    kubeconfig = tmp_path / "admin.conf"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "lab", "cluster": {"server": f"http://127.0.0.1:{closed_port}"}}],
                "users": [{"name": "admin", "user": {}}],
                "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "admin"}}],
                "current-context": "lab",
            }
        )
    )
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(lab.hosts["worker-1"].known_hosts_path.read_text())
    before = known_hosts.read_text()
    lab.ssh("worker-1", "mkdir -p /etc/cni/net.d && echo '{}' > /etc/cni/net.d/10-flannel.conflist")
    entry = f"{lab.hosts['worker-1'].address} worker-1"
    lab.ssh(
        "master-1",
        f"grep -q '^{entry}$' /etc/hosts"
        f" || printf '# BEGIN kobot cluster lab\\n{entry}\\n# END kobot cluster lab\\n' >> /etc/hosts",
    )

    result, events = lab.run(
        "node_remove.yml",
        extravars={
            **WITHOUT_HOST_FEATURES,
            "nodes_to_remove": ["worker-1"],
            "kubeconfig_path": str(kubeconfig),
            "known_hosts_path": str(known_hosts),
            "drain_timeout_seconds": 5,
        },
    )

    assert not result.succeeded
    assert result.failed_host == "worker-1"
    assert result.failed_task in ("Cordon the node", "Drain the node")
    started = {event.task for event in events if event.type is JobEventType.TASK_STARTED}
    assert "Cordon the node" in started
    assert "Run kubeadm reset" not in started and "Remove what kubeadm reset leaves behind" not in started
    assert "Name the remaining cluster nodes in /etc/hosts" not in started
    assert lab.ssh("worker-1", "ls /etc/cni/net.d").split() == ["10-flannel.conflist"]
    assert entry in lab.ssh("master-1", "cat /etc/hosts").splitlines()
    assert known_hosts.read_text() == before


def test_cluster_upgrade_check_mode_on_test_hosts_without_services_or_kube_packages(
    lab: RolesLab, tmp_path: Path
) -> None:
    """The kube_upgrade plays in `--check` mode (the etcd snapshot step has its own real test):
    masters one at a time, the first with `upgrade apply`, workers drained before anything else."""
    result, events = lab.run(
        "cluster_upgrade.yml",
        extravars={
            "kube_version": "v1.32.0",
            "kobot_manage_services": False,
            "kube_packages": [],
            "kube_packages_cri_tools": [],
            "kubeconfig_path": str(tmp_path / "admin.conf"),
        },
        tags=("kube_upgrade",),
        check_mode=True,
    )

    assert result.succeeded, (result.failed_task, result.failed_host, result.error)
    per_host = (JobEventType.TASK_OK, JobEventType.TASK_CHANGED, JobEventType.TASK_SKIPPED)
    order = [(e.host, e.task) for e in events if e.type in per_host and e.host]

    def first(host: str, task: str) -> int:
        return order.index((host, task))

    apply = first("master-1", "Upgrade the cluster from the first control-plane node")
    node_2 = first("master-2", "Upgrade this node's kubeadm-managed configuration")
    assert apply < first("master-1", "Uncordon the node") < node_2, "one control-plane node at a time"
    skipped = {(e.host, e.task) for e in events if e.type is JobEventType.TASK_SKIPPED}
    assert ("master-2", "Upgrade the cluster from the first control-plane node") in skipped
    assert ("master-1", "Upgrade this node's kubeadm-managed configuration") in skipped
    drain = first("worker-1", "Drain the node")
    assert (
        first("master-2", "Uncordon the node")
        < drain
        < first("worker-1", "Upgrade this node's kubeadm-managed configuration")
    )
