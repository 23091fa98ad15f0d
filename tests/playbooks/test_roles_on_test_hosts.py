"""The roles run against the real SSH test hosts (Debian 12 roots in network namespaces, no systemd).

What can execute there runs for real twice, and the second run must change nothing. The inventory
turns off what those hosts lack (`kobot_manage_services`, `kobot_manage_packages`,
`kobot_manage_kernel` false) and each such test says so in its name. What needs kubeadm, a kernel
of its own or the offline package mirror runs in `--check` mode and its name says "check mode".
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.hosts.lab import HostLab, LabHost
from workers.ansible import PlaybookResult, PlaybookRun, run_playbook
from workers.inventory import render_inventory, write_inventory
from workers.spec import JobEvent, JobEventType

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
            ),
            on_event=events.append,
            should_cancel=lambda: False,
        )
        return result, events

    def ssh(self, name: str, command: str, *, check: bool = True) -> str:
        completed = subprocess.run(
            [*self.hosts[name].ssh_args(), command],
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
