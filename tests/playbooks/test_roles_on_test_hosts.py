"""The roles run against the real SSH test hosts (Debian 12 roots in network namespaces, no systemd).

What can execute there runs for real twice, and the second run must change nothing. The inventory
turns off what those hosts lack (`kobot_manage_services`, `kobot_manage_packages`,
`kobot_manage_kernel` false) and each such test says so in its name. What needs kubeadm, a kernel
of its own or the offline package mirror runs in `--check` mode and its name says "check mode".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import shlex
import socket
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kobot.automation_values import load_yaml
from kobot.job_records import JobEvent, JobEventType
from tests.hosts.lab import HostLab, LabHost
from workers.ansible import PlaybookResult, PlaybookRun, run_playbook
from workers.inventory import render_inventory, write_inventory

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
NAMES = ("master-1", "master-2", "worker-1")
"""Two masters (so the load balancer plays) and one worker, one test host each."""
SSH_TIMEOUT_SECONDS = 30.0
"""Upper bound of one ssh command to a test host."""
WITHOUT_HOST_FEATURES = {
    "kobot_manage_services": False,
    "kobot_manage_packages": False,
    "kobot_manage_kernel": False,
}


@dataclass
class Lab:
    """The module's own three hosts, their inventory, and a runner that records every event."""

    hosts: dict[str, LabHost]
    inventory: Path
    work: Path
    runs: int = 0

    def run(
        self,
        playbook: str,
        *,
        extravars: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str] | None = None,
        check_mode: bool = False,
        tags: tuple[str, ...] = (),
    ) -> tuple[PlaybookResult, list[JobEvent]]:
        self.runs += 1
        events: list[JobEvent] = []
        result = run_playbook(
            PlaybookRun(
                job_id=f"lab{self.runs}",
                step=playbook.removesuffix(".yml"),
                attempt=1,
                playbook=playbook,
                playbooks_dir=PLAYBOOKS,
                inventory=self.inventory,
                artifacts_root=self.work / "jobs",
                extravars=dict(extravars or {}),
                secrets=dict(secrets or {}),
                check_mode=check_mode,
                tags=tags,
            ),
            on_event=events.append,
            should_cancel=lambda: False,
        )
        return result, events

    def ssh(self, name: str, command: str, *, check: bool = True, stdin: str | None = None) -> str:
        completed = subprocess.run(
            [*self.hosts[name].ssh_args(), command],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=SSH_TIMEOUT_SECONDS,
            check=False,
        )
        if check and completed.returncode != 0:
            raise AssertionError(f"{name}: {command} failed: {completed.stderr}")
        return completed.stdout

    def copy_in(self, name: str, *, source: Path, dest: str, mode: str = "0755") -> None:
        with source.open("rb") as data:
            subprocess.run(
                [*self.hosts[name].ssh_args(), f"cat > {dest} && chmod {mode} {dest}"],
                stdin=data,
                capture_output=True,
                timeout=SSH_TIMEOUT_SECONDS,
                check=True,
            )


@pytest.fixture(scope="module")
def lab(host_lab: HostLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Hosts of this module only, so what the roles leave behind meets no other test."""
    started = host_lab.start(count=len(NAMES))
    work = tmp_path_factory.mktemp("roles-lab")
    try:
        hosts = dict(zip(NAMES, started, strict=True))
        vip = started[0].address.rsplit(".", 1)[0] + ".200"
        inventory = render_inventory(
            nodes=[
                (name, "master" if name.startswith("master") else "worker", host.address)
                for name, host in hosts.items()
            ],
            ssh_user=started[0].user,
            ssh_key_path=started[0].key_path,
            known_hosts_path=started[0].known_hosts_path,
            cluster_vars={
                "cluster_name": "lab",
                "ansible_pipelining": True,
                "apiserver_loadbalancer_vip": vip,
                "apiserver_loadbalancer_interface": "eth0",
                "offline_registry": "10.10.0.5:5000",
                "preflight_extra_supported_os": [{"distribution": "Debian", "versions": ["12"]}],
            },
        )
        # One etcd member (etcd runs on master-1 only): every playbook but the node and delete ones
        # refuses an even etcd count, and two masters are what the load balancer needs.
        inventory["all"]["children"]["etcd"]["hosts"] = {"master-1": None}
        yield Lab(hosts=hosts, inventory=write_inventory(work / "inventory.yml", inventory), work=work)
    finally:
        for host in started:
            host_lab.stop(host)


def _changed_tasks(events: list[JobEvent]) -> set[str]:
    return {f"{event.host}: {event.task}" for event in events if event.type is JobEventType.TASK_CHANGED}


def _twice(lab: Lab, playbook: str, **kwargs: Any) -> tuple[PlaybookResult, PlaybookResult, list[JobEvent]]:
    first, events = lab.run(playbook, **kwargs)
    assert first.succeeded, (first.failed_task, first.failed_host, first.error)
    second, again = lab.run(playbook, **kwargs)
    assert second.succeeded, (second.failed_task, second.failed_host, second.error)
    assert second.changed == 0, _changed_tasks(again)
    return first, second, events


def test_base_os_files_real_on_test_hosts_idempotent_without_services_packages_kernel(lab: Lab) -> None:
    first, _, events = _twice(lab, "base_os.yml", extravars=WITHOUT_HOST_FEATURES)

    assert first.changed > 0
    changed = _changed_tasks(events)
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


def test_container_runtime_config_real_on_test_hosts_idempotent_without_services_packages(lab: Lab) -> None:
    first, _, _ = _twice(lab, "container_runtime.yml", extravars=WITHOUT_HOST_FEATURES)

    assert first.changed > 0
    for name in NAMES:
        config = lab.ssh(name, "cat /etc/containerd/config.toml")
        assert 'sandbox_image = "10.10.0.5:5000/pause:3.10"' in config
        assert "SystemdCgroup = true" in config
        mirror = lab.ssh(name, "cat /etc/containerd/certs.d/registry.k8s.io/hosts.toml")
        assert 'server = "http://10.10.0.5:5000"' in mirror
        assert "runtime-endpoint: unix:///run/containerd/containerd.sock" in lab.ssh(
            name, "cat /etc/crictl.yaml"
        )


def test_load_balancer_config_real_on_test_hosts_idempotent_without_services_packages(lab: Lab) -> None:
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
ETCD_PKI = "/etc/kubernetes/pki/etcd"
ETCD_BINARIES = (Path("/usr/bin/etcd"), Path("/usr/bin/etcdctl"))
ETCD_CLIENT_ENV = (
    f"ETCDCTL_API=3 ETCDCTL_ENDPOINTS=https://127.0.0.1:2379 ETCDCTL_CACERT={ETCD_PKI}/ca.crt "
    f"ETCDCTL_CERT={ETCD_PKI}/healthcheck-client.crt ETCDCTL_KEY={ETCD_PKI}/healthcheck-client.key"
)
ETCD_READY_ATTEMPTS = 50
"""Polls (0.2 s apart) for a freshly started etcd to answer."""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=30, check=True)


def _etcd_pki(directory: Path) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as kubeadm lays them out."""
    directory.mkdir()
    new_key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl("req", "-x509", *new_key, "-days", "2", "-subj", "/CN=etcd-ca", "-keyout", "ca.key",
             "-out", "ca.crt", cwd=directory)  # fmt: skip
    for name, usage in (("server", "serverAuth"), ("healthcheck-client", "clientAuth")):
        (directory / f"{name}.cnf").write_text(f"subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n")
        _openssl("req", *new_key, "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 cwd=directory)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", f"{name}.cnf", "-out", f"{name}.crt", cwd=directory)  # fmt: skip
    return directory


def _start_etcd(lab: Lab, name: str) -> None:
    pki = ETCD_PKI
    lab.ssh(
        name,
        "setsid -f /usr/local/bin/etcd --name " + name + " --data-dir /var/lib/etcd"
        " --listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379"
        " --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380"
        f" --initial-cluster {name}=http://127.0.0.1:2380"
        f" --cert-file {pki}/server.crt --key-file {pki}/server.key --client-cert-auth"
        f" --trusted-ca-file {pki}/ca.crt >/var/log/etcd.log 2>&1 </dev/null",
    )
    for _ in range(ETCD_READY_ATTEMPTS):
        if "is healthy" in lab.ssh(
            name, f"{ETCD_CLIENT_ENV} /usr/local/bin/etcdctl endpoint health 2>&1", check=False
        ):
            return
        subprocess.run(["sleep", "0.2"], check=True)
    raise AssertionError(lab.ssh(name, "tail -20 /var/log/etcd.log"))


def _stop_etcd(lab: Lab, name: str) -> None:
    lab.ssh(
        name,
        "pkill -x etcd; for i in $(seq 50); do pgrep -x etcd >/dev/null || exit 0; sleep 0.1; done; exit 1",
    )


@pytest.fixture(scope="module")
def etcd_masters(lab: Lab) -> Iterator[list[str]]:
    """etcd and etcdctl on both masters, kubeadm's etcd certificates in place, etcd running on master-1."""
    pki = _etcd_pki(lab.work / "etcd-pki")
    masters = ["master-1", "master-2"]
    for name in masters:
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
    _start_etcd(lab, "master-1")
    try:
        yield masters
    finally:
        for name in masters:
            lab.ssh(name, "pkill -x etcd; true", check=False)


def _etcd_get(lab: Lab, name: str, key: str) -> str:
    return lab.ssh(name, f"{ETCD_CLIENT_ENV} /usr/local/bin/etcdctl get --print-value-only {key}").strip()


def test_etcd_backup_real_on_test_hosts_idempotent(lab: Lab, etcd_masters: list[str]) -> None:
    lab.ssh("master-1", f"{ETCD_CLIENT_ENV} /usr/local/bin/etcdctl put /kobot/before-backup kept")
    dest = lab.work / "backups" / "lab-1.db"
    extravars = {
        **WITHOUT_HOST_FEATURES,
        "etcd_backup_dest": str(dest),
        "etcd_snapshot_name": "lab-1.db",
        "etcdctl_bin": "/usr/local/bin/etcdctl",
    }

    _, _, events = _twice(lab, "etcd_backup.yml", extravars=extravars)

    assert {"master-1: Take the snapshot", "master-1: Fetch the snapshot to kobot"} <= _changed_tasks(events)
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


STATIC_POD_RUNNER = """
while true; do
  if [ -f /etc/kubernetes/manifests/etcd.yaml ]; then
    pgrep -x etcd >/dev/null || {etcd}
  else
    pkill -x etcd
  fi
  if [ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]; then
    pgrep -f '^python3 -m http.server 6443' >/dev/null ||
      setsid -f python3 -m http.server 6443 --bind 127.0.0.1 >/dev/null 2>&1
  else
    pkill -f '^python3 -m http.server 6443'
  fi
  sleep 0.2
done
"""
"""What the kubelet does with static pods, as far as a restore sees it: a manifest in
/etc/kubernetes/manifests runs its process, a manifest moved away stops it. etcd is the real etcd;
the API server is represented by a listener on its port (no API server binary exists here)."""
RUNNER_PATH = "/root/static-pods.sh"
MANIFESTS = "/etc/kubernetes/manifests"


def test_etcd_restore_real_on_test_hosts_stops_api_servers_first_and_a_retry_restores_nothing_again(
    lab: Lab, etcd_masters: list[str], tmp_path: Path
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
    _stop_etcd(lab, "master-1")
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
    _wait_until_listening(lab, "master-1", 2379)
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
        run = dataclasses.replace(lab, inventory=restore_inventory)
        result, events = run.run("etcd_restore.yml", extravars=extravars)
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

        again, again_events = run.run("etcd_restore.yml", extravars=extravars)
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
        _stop_etcd(lab, "master-1")


def _wait_until_listening(lab: Lab, name: str, port: int) -> None:
    probe = (
        f"for i in $(seq 100); do (echo > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && exit 0; sleep 0.1; done;"
        " exit 1"
    )
    lab.ssh(name, f"bash -c {shlex.quote(probe)}")


def test_cluster_delete_real_on_test_hosts_idempotent_without_services(lab: Lab) -> None:
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


def test_node_add_check_mode_on_test_hosts_without_services_or_kube_packages(lab: Lab) -> None:
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
    would_change = _changed_tasks(events)
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


def test_node_remove_real_on_test_hosts_resets_nothing_when_the_drain_fails(lab: Lab, tmp_path: Path) -> None:
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
    lab: Lab, tmp_path: Path
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
