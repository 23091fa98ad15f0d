"""Every entry playbook parses (`ansible-playbook --syntax-check`); ansible-lint's production profile holds.

ansible-lint itself runs in `make test` beside mypy (`make playbook-lint`), where it takes a core that
stood idle; here only what keeps that run meaningful is checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
SAMPLE_INVENTORY = PLAYBOOKS / "inventory" / "sample" / "hosts.yml"
ENTRY_PLAYBOOKS = sorted(path.name for path in PLAYBOOKS.glob("*.yml"))
SYNTAX_CHECK_TIMEOUT_SECONDS = 300.0
"""One syntax check of every entry playbook takes a few seconds; this bound only stops a hung run."""


def _venv_program(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _venv_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    env["NO_COLOR"] = "1"
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


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


def test_every_entry_playbook_passes_syntax_check() -> None:
    """One `ansible-playbook --syntax-check` over all of them: Ansible's start-up costs more than checking
    a playbook, and the error of a refused one names its file."""
    completed = subprocess.run(
        [_venv_program("ansible-playbook"), "--syntax-check", "-i", str(SAMPLE_INVENTORY), *ENTRY_PLAYBOOKS],
        cwd=PLAYBOOKS,
        env=_venv_env(),
        capture_output=True,
        text=True,
        timeout=SYNTAX_CHECK_TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    checked = [
        line.removeprefix("playbook: ")
        for line in completed.stdout.splitlines()
        if line.startswith("playbook: ")
    ]
    assert checked == ENTRY_PLAYBOOKS, "every entry playbook was checked"


def test_make_test_lints_the_playbooks_with_the_production_profile_offline() -> None:
    config = yaml.safe_load((PLAYBOOKS / ".ansible-lint").read_text(encoding="utf-8"))
    assert config["profile"] == "production"
    assert config["offline"] is True
    assert set(config.get("skip_list", [])) <= {"var-naming[no-role-prefix]"}, "no rule skipped silently"
    assert not config.get("warn_list"), "a warning passes the run: every finding must fail it"
    makefile = (PLAYBOOKS.parent / "Makefile").read_text(encoding="utf-8")
    static = re.search(r"^static: .*\n\t(.*)$", makefile, re.MULTILINE)
    assert static and "playbook-lint" in static.group(1).split(), "make test runs ansible-lint"
    assert re.search(r"^test: .*\bstatic\b", makefile, re.MULTILINE)
