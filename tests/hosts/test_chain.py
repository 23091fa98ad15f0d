"""Day 0 end to end on real parts: Terraform's testhosts module, its outputs, the inventory, the SSH
wait and a real ansible-playbook run over SSH against the lab hosts."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kobot.job_records import JobEvent, JobEventType
from tests.hosts.lab import LabHost
from workers.ansible import PlaybookRun, run_playbook
from workers.inventory import render_inventory, write_inventory
from workers.ssh import wait_for_ssh
from workers.terraform import TerraformWorkspace

REPO = Path(__file__).resolve().parents[2]


def test_chain_testhosts_module_stands_in_for_iaas_then_inventory_ssh_wait_and_ansible(
    lab_hosts: list[LabHost], tmp_path: Path
) -> None:
    names = ["chain-master-1", "chain-worker-1", "chain-worker-2"]
    nodes = {
        name: {
            "role": name.split("-")[1],
            "ip": host.address,
            "cpu": 2,
            "memory": 2048,
            "disk": 20,
            "zone": "lab",
        }
        for name, host in zip(names, lab_hosts, strict=True)
    }
    workspace = TerraformWorkspace(
        cluster="chain", module_dir=REPO / "terraform" / "modules" / "testhosts", work_root=tmp_path / "tf"
    )
    outputs = workspace.apply(variables={"nodes": nodes}, job_id="1", on_event=None, should_cancel=None)
    assert {name: out.ip for name, out in outputs.items()} == {n: v["ip"] for n, v in nodes.items()}

    key = lab_hosts[0].key_path
    inventory = render_inventory(
        nodes=outputs,
        ssh_user=lab_hosts[0].user,
        ssh_key_path=key,
        known_hosts_path=lab_hosts[0].known_hosts_path,
        cluster_vars={"cluster_name": "chain"},
    )
    inventory_path = write_inventory(tmp_path / "inventory.yml", inventory)
    assert str(key) in inventory_path.read_text() and "PRIVATE KEY" not in inventory_path.read_text()

    wait_for_ssh(hosts=[(out.ip, 22) for out in outputs.values()], timeout=30, should_cancel=None)

    events: list[JobEvent] = []
    result = run_playbook(
        PlaybookRun(
            job_id="1",
            step="reach",
            attempt=1,
            playbook="reach.yml",
            playbooks_dir=REPO / "tests" / "hosts" / "playbooks",
            inventory=inventory_path,
            artifacts_root=tmp_path / "jobs",
        ),
        on_event=events.append,
        should_cancel=lambda: False,
    )
    assert result.succeeded, (result.failed_task, result.failed_host, result.error)
    assert (result.failed, result.unreachable, result.changed) == (0, 0, 3)
    assert {e.host for e in events if e.type is JobEventType.TASK_CHANGED} == set(names)
    assert not Path("/etc/kobot-chain-mark").exists()
    for name, host in zip(names, lab_hosts, strict=True):
        mark = subprocess.run(
            [*host.ssh_args(), "cat /etc/kobot-chain-mark; rm /etc/kobot-chain-mark"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert mark.stdout == f"{name}\n"
