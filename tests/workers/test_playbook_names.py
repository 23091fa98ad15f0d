"""Every playbook a step runs is one kobot ships, and the steps name no playbook outside the list."""

from __future__ import annotations

import re
from pathlib import Path

from workers import playbook_names

REPO = Path(__file__).resolve().parents[2]


def test_every_named_playbook_exists_in_the_shipped_playbooks() -> None:
    missing = [name for name in playbook_names.ENTRY_PLAYBOOKS if not (REPO / "playbooks" / name).is_file()]
    assert not missing


def test_the_list_holds_every_constant_once() -> None:
    constants = {
        value for key, value in vars(playbook_names).items() if key.isupper() and isinstance(value, str)
    }
    assert constants == set(playbook_names.ENTRY_PLAYBOOKS)
    assert len(playbook_names.ENTRY_PLAYBOOKS) == len(constants)


def test_no_step_module_spells_a_playbook_name_itself() -> None:
    literal = re.compile(r"""["'][A-Za-z0-9_]+\.ya?ml["']""")
    spelled = [
        f"{path.relative_to(REPO)}: {match.group(0)}"
        for path in (REPO / "workers").rglob("*.py")
        # the runner package runs whatever it is given; its docstrings may show an example name
        if path.name != "playbook_names.py" and "ansible" not in path.relative_to(REPO).parts
        for match in literal.finditer(path.read_text())
        if match.group(0).strip("\"'") in playbook_names.ENTRY_PLAYBOOKS
    ]
    assert not spelled
