"""What the step machinery hands the Ansible runner, and what it gets back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PlaybookRun:
    """One attempt of one step: which playbook, against which inventory, with which variables.

    `secrets` reach Ansible through environment variables only (never extravars, never a command
    line); playbooks read them with `lookup('ansible.builtin.env', NAME)` under `no_log`.

    `extravars` may carry values from users and records: every string in them reaches Ansible
    tagged `!unsafe`, so it is never rendered as a template. `site_vars` are the operator's own
    settings (ansible_extra_vars) and may use templates; step values override them.
    """

    job_id: str
    step: str
    attempt: int
    playbook: str
    """Path relative to `playbooks_dir`, e.g. "preflight.yml"."""
    playbooks_dir: Path
    inventory: Path
    """An inventory file (YAML) written by the caller."""
    artifacts_root: Path
    """settings.job_artifacts_dir(); the private data dir is artifacts_root/job_id/f"{step}-a{attempt}"."""
    extravars: Mapping[str, Any] = field(default_factory=dict)
    site_vars: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    check_mode: bool = False

    @property
    def ident(self) -> str:
        """ansible-runner's ident: the job id leads so logs and artifacts correlate by job."""
        return f"{self.job_id}-{self.step}-a{self.attempt}"

    @property
    def job_dir(self) -> Path:
        return self.artifacts_root / self.job_id

    @property
    def private_data_dir(self) -> Path:
        return self.job_dir / f"{self.step}-a{self.attempt}"


class PlaybookStatus(str, Enum):
    SUCCESSFUL = "successful"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class PlaybookResult:
    """Outcome of one run. Counts are summed over hosts; every text field is already masked."""

    status: PlaybookStatus
    rc: int
    changed: int
    failed: int
    ok: int
    unreachable: int
    failed_task: str | None
    failed_host: str | None
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.status is PlaybookStatus.SUCCESSFUL
