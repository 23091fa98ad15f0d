"""A module's own SSH test hosts with a kobot inventory and a playbook runner that records every event.

Each test module that runs playbooks on test hosts opens one `RolesLab` (a module-scoped fixture), so
what the roles leave behind on the hosts meets no other module's tests.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kobot.job_records import JobEvent, JobEventType
from tests.hosts.lab import HostLab, LabHost
from workers.ansible import PlaybookResult, PlaybookRun, run_playbook
from workers.inventory import render_inventory, write_inventory

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
SSH_TIMEOUT_SECONDS = 30.0
"""Upper bound of one ssh command to a test host."""
WITHOUT_HOST_FEATURES: dict[str, Any] = {
    "kobot_manage_services": False,
    "kobot_manage_packages": False,
    "kobot_manage_kernel": False,
}
"""What the test hosts lack: no systemd, no package sources of their own, a kernel of their own."""
LAB_OFFLINE_REGISTRY = "10.10.0.5:5000"
"""Written into configs only: nothing on the test hosts ever connects to it."""
LAB_MIRRORED_REGISTRIES = ["registry.k8s.io"]
"""One upstream registry besides the offline one: containerd's loop writes a directory and a hosts.toml per
registry, two tasks per host per registry (about 2 s each on the test hosts), the same for every entry."""


@dataclass
class RolesLab:
    """The module's hosts (inventory name → host), their inventory, and a runner."""

    hosts: dict[str, LabHost]
    inventory: Path
    work: Path
    runs: int = 0
    """Playbook runs so far; run N keeps its artifacts under work/jobs/labN."""

    def run(
        self,
        playbook: str,
        *,
        extravars: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str] | None = None,
        check_mode: bool = False,
        tags: tuple[str, ...] = (),
        inventory: Path | None = None,
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
                inventory=inventory or self.inventory,
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

    def copy_in(self, name: str, *, source: Path, dest: str, mode: str = "0644") -> None:
        with source.open("rb") as data:
            subprocess.run(
                [*self.hosts[name].ssh_args(), f"cat > {dest} && chmod {mode} {dest}"],
                stdin=data,
                capture_output=True,
                timeout=SSH_TIMEOUT_SECONDS,
                check=True,
            )


@contextlib.contextmanager
def open_roles_lab(
    host_lab: HostLab,
    work: Path,
    *,
    names: tuple[str, ...],
    cluster_vars: Mapping[str, Any] | None = None,
    offline_registry: str | None = LAB_OFFLINE_REGISTRY,
    etcd: tuple[str, ...] | None = None,
) -> Iterator[RolesLab]:
    """Start one host per name ("master-…" names are masters), stop them after. etcd runs on `etcd`, by
    default the first master alone: every playbook but the node and delete ones refuses an even etcd
    count. `offline_registry` None leaves the registry out of the inventory."""
    started = host_lab.start(count=len(names))
    try:
        hosts = dict(zip(names, started, strict=True))
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
                "preflight_extra_supported_os": [{"distribution": "Debian", "versions": ["12"]}],
                **({"offline_registry": offline_registry} if offline_registry else {}),
                "containerd_mirrored_registries": LAB_MIRRORED_REGISTRIES,
                **dict(cluster_vars or {}),
            },
        )
        members = etcd or (next(name for name in names if name.startswith("master")),)
        inventory["all"]["children"]["etcd"]["hosts"] = dict.fromkeys(members)
        yield RolesLab(hosts=hosts, inventory=write_inventory(work / "inventory.yml", inventory), work=work)
    finally:
        for host in started:
            host_lab.stop(host)


def changed_tasks(events: list[JobEvent]) -> set[str]:
    """`host: task` of every task that changed (or, in check mode, would change)."""
    return {f"{event.host}: {event.task}" for event in events if event.type is JobEventType.TASK_CHANGED}


def tasks_of(events: list[JobEvent], kind: JobEventType) -> set[tuple[str, str]]:
    return {(event.host or "", event.task or "") for event in events if event.type is kind}


def assert_succeeded(result: PlaybookResult) -> None:
    assert result.succeeded, (result.failed_task, result.failed_host, result.error)


def wait_until_listening(lab: RolesLab, name: str, port: int) -> None:
    """Until something on the host accepts TCP connections on its loopback `port` (about 10 s at most)."""
    probe = (
        f"for i in $(seq 100); do (echo > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && exit 0; sleep 0.1; done;"
        " exit 1"
    )
    lab.ssh(name, f"bash -c {shlex.quote(probe)}")
