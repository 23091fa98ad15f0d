"""Entry playbooks that write down what kobot handed them, for the bot -> Ansible contract tests.

A recorder plays on localhost (local connection) and writes one JSON file per playbook into the folder
the job's `record_dir` extra var names, so a test reads back what the roles would have read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kobot.settings import Settings
from tests.workers.jobkit import job_settings

CONTRACT_RECORDER = """---
- name: Record what kobot handed {name}
  hosts: localhost
  connection: local
  gather_facts: false
  tags: [always]
  tasks:
    - name: Write this run down
      ansible.builtin.copy:
        dest: "{{ record_dir }}/{name}.json"
        content: "{{ record | to_json }}"
        mode: "0600"
      vars:
        first_master: "{{ hostvars[groups['kube_control_plane'][0]] }}"
        record:
          offline_registry: "{{ first_master.offline_registry | default(none) }}"
          offline_repo_url: "{{ first_master.offline_repo_url | default(none) }}"
          offline_files_url: "{{ first_master.offline_files_url | default(none) }}"
          vip: "{{ first_master.apiserver_loadbalancer_vip | default(none) }}"
          masters: "{{ groups['kube_control_plane'] }}"
          vrrp_password_length: "{{ lookup('ansible.builtin.env', 'KOBOT_KEEPALIVED_AUTH') | length }}"
"""
"""The offline settings and the VIP as the first master's inventory has them, the masters, and whether
the VRRP password is in the environment (its length, never its value). `{name}` is the playbook's stem."""


def _stem(playbook: str) -> str:
    return playbook.removesuffix(".yml")


def write_recorders(folder: Path, playbooks: Iterable[str], *, template: str = CONTRACT_RECORDER) -> Path:
    """`folder` (made here) holding a recorder under each playbook's name."""
    folder.mkdir()
    for playbook in playbooks:
        (folder / playbook).write_text(template.replace("{name}", _stem(playbook)), encoding="utf-8")
    return folder


def recording_settings(redis_url: str, data_dir: Path, *, playbooks_dir: Path) -> tuple[Settings, Path]:
    """Job settings that run the recorders in `playbooks_dir` on local hosts, and the folder they write to."""
    record_dir = data_dir / "played"
    record_dir.mkdir()
    settings = job_settings(
        redis_url,
        data_dir,
        playbooks_dir=playbooks_dir,
        plugins=[],
        allow_local_hosts=True,
        ansible_extra_vars={"record_dir": str(record_dir)},
    )
    return settings, record_dir


def played(record_dir: Path, playbook: str) -> Any:
    """What the recorder of `playbook` wrote down."""
    return json.loads((record_dir / f"{_stem(playbook)}.json").read_text(encoding="utf-8"))
