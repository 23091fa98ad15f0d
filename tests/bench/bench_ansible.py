"""Ansible overhead per task on an SSH test host, through kobot's playbook runner (ansible-runner).

Two runs of a generated playbook, 1 task and TASKS tasks, against one real SSH test host; the per-task
figure is their difference divided by TASKS - 1, so start-up and connection set-up cancel out.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import yaml

from tests.hosts.lab import HostLab
from tests.hosts.rootfs import ensure_rootfs
from workers.ansible import PlaybookRun, PlaybookStatus, run_playbook

TASKS = 40
"""Tasks in the long run: enough that per-task cost dominates the difference."""


def _playbook(folder: Path, tasks: int) -> str:
    name = f"bench_{tasks}.yml"
    play = [
        {
            "name": "Bench",
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {"name": f"Step {i}", "ansible.builtin.command": "true", "changed_when": False}
                for i in range(tasks)
            ],
        }
    ]
    (folder / name).write_text(yaml.safe_dump(play, sort_keys=False))
    return name


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="kobot-bench-ansible-") as tmp:
        root = Path(tmp)
        lab = HostLab(rootfs=ensure_rootfs(), work_dir=root / "lab").open()
        try:
            lab.start(count=1)
            host = lab.hosts[0]
            inventory = root / "inventory.yml"
            inventory.write_text(
                yaml.safe_dump(
                    {
                        "all": {
                            "hosts": {"bench-1": {"ansible_host": host.address, "ansible_port": host.port}},
                            "vars": {
                                "ansible_user": host.user,
                                "ansible_ssh_private_key_file": str(host.key_path),
                            },
                        }
                    }
                )
            )
            seconds = {}
            for count in (1, TASKS):
                playbook = _playbook(root, count)
                started = time.perf_counter()
                result = run_playbook(
                    PlaybookRun(
                        job_id=f"bench{count}",
                        step="bench",
                        attempt=1,
                        playbook=playbook,
                        playbooks_dir=root,
                        inventory=inventory,
                        artifacts_root=root / "artifacts",
                    ),
                    on_event=lambda event: None,
                    should_cancel=lambda: False,
                )
                seconds[count] = time.perf_counter() - started
                if result.status is not PlaybookStatus.SUCCESSFUL:
                    raise RuntimeError(f"bench playbook ended {result.status.value}: {result.error}")
        finally:
            lab.close()
    return {
        "playbook with 1 task s": seconds[1],
        f"playbook with {TASKS} tasks s": seconds[TASKS],
        "ansible overhead per task on a test host ms": (seconds[TASKS] - seconds[1]) / (TASKS - 1) * 1000,
    }
