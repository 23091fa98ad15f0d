"""The copy of an imported cluster's SSH key that one job attempt keeps in its private dir, and removing
it: by the attempt when it ends, by the recovery sweep when a killed worker never did.

Apart from `workers.cluster_import_ssh` (which writes the copy), so the sweep that runs at every start
does not import the SSH proof and the secrets' cipher with it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

ATTEMPT_KEY_FILE = "imported-ssh-key"
"""The key's file in a job's private dir while one attempt runs; removed when the attempt ends."""


def remove_attempt_key(work_dir: Path) -> None:
    """Remove an attempt's copy of an imported cluster's key (nothing when there is none)."""
    (work_dir / ATTEMPT_KEY_FILE).unlink(missing_ok=True)
    (work_dir / ATTEMPT_KEY_FILE).with_suffix(".part").unlink(missing_ok=True)


def remove_abandoned_attempt_keys(artifacts_dir: Path, *, lease_alive: Callable[[str], bool]) -> list[str]:
    """Remove the key copies of attempts no worker runs any more (a worker killed mid-attempt never
    reached its own clean-up); returns the job ids. A job whose lease is alive keeps its copy."""
    removed: list[str] = []
    for job_dir in sorted({key.parent for key in artifacts_dir.glob(f"*/{ATTEMPT_KEY_FILE}*")}):
        if lease_alive(job_dir.name):
            continue
        remove_attempt_key(job_dir)
        removed.append(job_dir.name)
    return removed
