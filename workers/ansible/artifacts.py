"""The private data dir of a run: created private, scrubbed of secrets after the run, pruned by policy.

The runner writes the whole process environment into `command` and `env/envvars`, and module output
into `stdout` and `job_events/*.json`; all of it may carry secrets. After a run the environment files
are removed and every other text file is rewritten masked.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import yaml

from kobot import defaults
from workers.masking import Masker

log = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
"""Only the worker's user may read a run's private data dir, even before it is scrubbed."""

JOB_TIMEOUT_SECONDS = defaults.JOB_TIMEOUT_SECONDS
"""A playbook never outlives the RQ job that started it."""

_ENVIRONMENT_FILES = ("command", "env/envvars", "env/ssh_key", "env/passwords", "env/cmdline")
"""Runner files that hold the whole environment or credentials: removed, not masked."""


def prepare_private_data_dir(*, private_data_dir: Path) -> None:
    """A fresh private dir for one attempt, with the runner settings that make cancel prompt."""
    if private_data_dir.exists():
        # A re-run of the same attempt (a worker that died mid-step) starts clean.
        shutil.rmtree(private_data_dir)
    private_data_dir.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    private_data_dir.parent.chmod(PRIVATE_DIR_MODE)
    private_data_dir.mkdir(mode=PRIVATE_DIR_MODE)
    private_data_dir.chmod(PRIVATE_DIR_MODE)
    env_dir = private_data_dir / "env"
    env_dir.mkdir(mode=PRIVATE_DIR_MODE)
    settings = {
        "pexpect_timeout": defaults.ANSIBLE_PEXPECT_TIMEOUT,
        "job_timeout": JOB_TIMEOUT_SECONDS,
        "suppress_ansible_output": True,
    }
    (env_dir / "settings").write_text(yaml.safe_dump(settings), encoding="utf-8")


def scrub_private_data_dir(*, private_data_dir: Path, masker: Masker) -> list[Path]:
    """Remove environment files and mask every other file; returns the files that changed."""
    touched: list[Path] = []
    for artifact_dir in private_data_dir.glob("artifacts/*"):
        for name in _ENVIRONMENT_FILES:
            target = artifact_dir / name
            if target.exists():
                target.unlink()
                touched.append(target)
    for name in _ENVIRONMENT_FILES:
        target = private_data_dir / name
        if target.exists():
            target.unlink()
            touched.append(target)
    for path in sorted(private_data_dir.rglob("*")):
        if path.is_file() and not path.is_symlink() and masker.scrub_file(path=path):
            touched.append(path)
    return touched


def prune_job_dirs(*, artifacts_root: Path, keep: int, protect: str | None = None) -> list[Path]:
    """Keep the `keep` most recently modified job dirs under `artifacts_root`; remove the rest.

    `protect` names a job dir never removed (the job running now), whatever its age.
    """
    if keep < 1 or not artifacts_root.is_dir():
        return []
    job_dirs = [path for path in artifacts_root.iterdir() if path.is_dir() and not path.is_symlink()]
    if len(job_dirs) <= keep:
        return []

    def mtime(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return 0.0

    job_dirs.sort(key=lambda path: (mtime(path), path.name), reverse=True)
    kept = [path for path in job_dirs if path.name == protect]
    kept += [path for path in job_dirs if path.name != protect][: keep - len(kept)]
    removed: list[Path] = []
    for path in job_dirs:
        if path in kept:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    if removed:
        log.info("pruned %d job artifact dirs under %s", len(removed), artifacts_root)
    return removed
