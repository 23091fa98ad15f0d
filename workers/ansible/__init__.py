"""The Ansible runner: one playbook run per job step attempt, events out, secrets masked, cancel cooperative.

Public API: `PlaybookRun`, `PlaybookStatus`, `PlaybookResult`, `run_playbook`, `syntax_check`.
"""

from __future__ import annotations

from workers.ansible.models import PlaybookResult, PlaybookRun, PlaybookStatus
from workers.ansible.runner import run_playbook, syntax_check

__all__ = ["PlaybookResult", "PlaybookRun", "PlaybookStatus", "run_playbook", "syntax_check"]
