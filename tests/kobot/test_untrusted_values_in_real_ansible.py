"""Untrusted values as ansible-core itself loads them: the `!unsafe` tag must keep text literal and an
empty value must stay an empty string (ansible-core 2.19 loads `!unsafe ""` as null)."""

from __future__ import annotations

import subprocess  # nosec B404: runs the venv's own ansible-playbook on localhost
import sys
from pathlib import Path

from kobot.automation_values import Untrusted
from kobot.automation_yaml import dump_yaml

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.assert:
        that:
          - empty is string
          - empty | length == 0
          - template_text == '{' ~ '{ 7 * 7 }' ~ '}'
"""


def test_empty_and_template_untrusted_values_reach_real_ansible_as_written(tmp_path: Path) -> None:
    extra_vars = tmp_path / "vars.yml"
    extra_vars.write_text(dump_yaml({"empty": Untrusted(""), "template_text": Untrusted("{{ 7 * 7 }}")}))
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    done = subprocess.run(  # nosec B603: fixed argv, no shell
        [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", "-e", f"@{extra_vars}", str(playbook)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": str(ANSIBLE_PLAYBOOK.parent) + ":/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1"},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "ok=1" in done.stdout
