"""Every playbook parses (`ansible-playbook --syntax-check`) and passes `ansible-lint --offline`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workers.ansible import syntax_check

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
SAMPLE_INVENTORY = PLAYBOOKS / "inventory" / "sample" / "hosts.yml"
ENTRY_PLAYBOOKS = sorted(path.name for path in PLAYBOOKS.glob("*.yml"))
LINT_TIMEOUT_SECONDS = 900.0
"""ansible-lint over ~160 files takes about a minute alone and 2-3 beside the rest of the suite on 2 cores;
this bound only stops a hung run."""


def test_the_day1_entry_playbooks_exist() -> None:
    expected = {
        "preflight.yml",
        "cluster_create.yml",
        "base_os.yml",
        "container_runtime.yml",
        "kubernetes_packages.yml",
        "load_balancer.yml",
        "control_plane.yml",
        "workers_join.yml",
        "cni.yml",
        "addons.yml",
        "post.yml",
    }
    assert expected <= set(ENTRY_PLAYBOOKS)


def test_the_day2_entry_playbooks_exist() -> None:
    expected = {
        "node_add.yml",
        "node_remove.yml",
        "cluster_upgrade.yml",
        "etcd_backup.yml",
        "etcd_restore.yml",
        "cluster_delete.yml",
        "cluster_cert_renew.yml",
    }
    assert expected <= set(ENTRY_PLAYBOOKS)


@pytest.mark.parametrize("playbook", ENTRY_PLAYBOOKS)
def test_playbook_passes_syntax_check(playbook: str) -> None:
    syntax_check(PLAYBOOKS / playbook, inventory=SAMPLE_INVENTORY)


def test_playbooks_pass_ansible_lint_production_profile() -> None:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    env["NO_COLOR"] = "1"
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-lint"), "--offline", "--nocolor"],
        cwd=PLAYBOOKS,
        env=env,
        capture_output=True,
        text=True,
        timeout=LINT_TIMEOUT_SECONDS,
        check=False,
    )
    report = completed.stdout + completed.stderr
    assert completed.returncode == 0, report
    assert "Profile 'production' was required, and it passed" in report
