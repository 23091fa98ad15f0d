"""`run_playbook`: one step attempt through ansible-runner, with events, masking and cooperative cancel."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from kobot import automation_values, automation_yaml, defaults
from kobot.job_records import JobEvent
from workers.ansible.artifacts import prepare_private_data_dir, prune_job_dirs, scrub_private_data_dir
from workers.ansible.events import EventTranslator, shorten
from workers.ansible.models import PlaybookResult, PlaybookRun, PlaybookStatus
from workers.ansible.processes import RUN_MARKER_ENV, playbook_process, reap_leftovers, signal_process
from workers.masking import Masker

log = logging.getLogger(__name__)

SYNTAX_CHECK_TIMEOUT_SECONDS = 60.0
"""`ansible-playbook --syntax-check` takes about half a second; a minute means something hangs."""

SSH_ARGS = "-C -o ControlMaster=auto -o ControlPersist=60s -o StrictHostKeyChecking=accept-new"
"""Host keys stay checked: a new node's key is recorded on first contact, a changed key fails the run."""

KNOWN_HOSTS_FILE = "known_hosts"
"""Host keys kobot has seen, next to the job dirs (artifacts_root) so every job checks against them."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_ENV = frozenset({"PATH", RUN_MARKER_ENV, "HOME", "PYTHONPATH"})
_LOCAL_INTERPRETER = (
    "{{ '%s' if (ansible_connection | default('ssh')) == 'local' "
    "or inventory_hostname in ['localhost', '127.0.0.1', '::1'] else 'auto_silent' }}"
)
_STATUS = {status.value: status for status in PlaybookStatus}

EXTRAVARS_FILE = "env/extravars"
"""ansible-runner passes this file of the private data dir to ansible-playbook as `-e @file`."""


def _venv_bin() -> str:
    return str(Path(sys.executable).parent)


def _envvars(run: PlaybookRun) -> dict[str, str]:
    for name in run.secrets:
        if not _ENV_NAME.match(name) or name in _RESERVED_ENV:
            raise ValueError(f"secret name {name!r} cannot be an environment variable of a run")
    known_hosts = run.artifacts_root / KNOWN_HOSTS_FILE
    env = {
        "PATH": os.pathsep.join([_venv_bin(), os.environ.get("PATH", os.defpath)]),
        RUN_MARKER_ENV: str(run.private_data_dir),
        # ansible-runner turns host key checking off unless told otherwise.
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_ARGS": f"{SSH_ARGS} -o UserKnownHostsFile={known_hosts}",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        # Modules go over the open SSH connection instead of being copied first: as kubespray does,
        # and several times faster per task (make bench: bench_ansible).
        "ANSIBLE_PIPELINING": "True",
    }
    env.update(run.secrets)
    return env


def _extravars(run: PlaybookRun) -> dict[str, Any]:
    """Site variables and kobot's interpreter choice as they are (trusted: they may be templates), the
    step's variables with every string marked untrusted (written `!unsafe`)."""
    extravars: dict[str, Any] = dict(run.site_vars)
    extravars.setdefault("ansible_python_interpreter", _LOCAL_INTERPRETER % sys.executable)
    extravars.update(automation_values.untrusted(dict(run.extravars)))
    return extravars


def write_extravars(run: PlaybookRun) -> Path:
    """The run's extra vars as YAML in the private data dir (mode 0600): JSON, which ansible-runner
    writes for an `extravars` argument, cannot carry the `!unsafe` tag."""
    path = run.private_data_dir / EXTRAVARS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(automation_yaml.dump_yaml(_extravars(run)))
    return path


class _CancelWatch:
    """Polled by ansible-runner every `pexpect_timeout`: SIGTERM first, give Ansible a grace, then let
    the runner kill the process group."""

    def __init__(self, *, run: PlaybookRun, should_cancel: Callable[[], bool]) -> None:
        self._run = run
        self._should_cancel = should_cancel
        self.requested = False
        self._terminated_at: float | None = None

    def __call__(self) -> bool:
        if not self.requested:
            try:
                self.requested = bool(self._should_cancel())
            except RedisError as exc:
                # a store outage repeats this every check: one line each, not a traceback each
                log.error("job %s: cancel check failed (store: %s); the run goes on", self._run.job_id, exc)
            except Exception:
                log.exception("job %s: cancel check failed; the run goes on", self._run.job_id)
                return False
            if not self.requested:
                return False
        if self._terminated_at is None:
            pid = playbook_process(private_data_dir=self._run.private_data_dir)
            if pid is not None:
                signal_process(pid, signal.SIGTERM)
            self._terminated_at = time.monotonic()
            log.info("job %s: cancel requested, ansible-playbook %s sent SIGTERM", self._run.job_id, pid)
            return False
        return time.monotonic() - self._terminated_at >= defaults.ANSIBLE_CANCEL_GRACE_SECONDS


def _sum(stats: Mapping[str, Any] | None, key: str) -> int:
    if not stats or not isinstance(stats.get(key), dict):
        return 0
    return sum(int(value) for value in stats[key].values())


def _stdout_tail(run: PlaybookRun) -> str | None:
    path = run.private_data_dir / "artifacts" / run.ident / "stdout"
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError):
        return None
    return "\n".join(lines[-8:]) or None


def run_playbook(
    run: PlaybookRun, *, on_event: Callable[[JobEvent], None], should_cancel: Callable[[], bool]
) -> PlaybookResult:
    """Run one playbook for one step attempt and return its masked result.

    Every Ansible task event reaches `on_event` as a masked `JobEvent` in the caller's thread.
    Nothing secret remains in the private data dir afterwards, no process of the run outlives it,
    and old job dirs beyond `ANSIBLE_ARTIFACTS_KEEP` are pruned.
    """
    import ansible_runner  # heavy (and only a worker runs playbooks): not loaded when `kobot serve` starts

    # ansible-playbook runs in playbooks_dir and /proc is searched by path: use absolute paths.
    run = replace(
        run,
        playbooks_dir=run.playbooks_dir.absolute(),
        inventory=run.inventory.absolute(),
        artifacts_root=run.artifacts_root.absolute(),
    )
    playbook_path = run.playbooks_dir / run.playbook
    envvars = _envvars(run)
    masker = Masker.with_environment(values=run.secrets.values(), environ=dict(os.environ))
    prepare_private_data_dir(private_data_dir=run.private_data_dir)
    write_extravars(run)

    def emit(event: JobEvent) -> None:
        try:
            on_event(event)
        except Exception:
            log.exception("job %s: publishing a runner event failed", run.job_id)

    translator = EventTranslator(job_id=run.job_id, step=run.step, masker=masker, emit=emit)

    def handle(raw: dict[str, Any]) -> bool:
        masked = masker.mask_data(raw)
        raw.clear()
        raw.update(masked)
        translator.handle(raw)
        return True

    watch = _CancelWatch(run=run, should_cancel=should_cancel)
    status = PlaybookStatus.FAILED
    rc = -1
    stats: Mapping[str, Any] | None = None
    crash: str | None = None
    log.info("job %s: step %s attempt %d runs %s", run.job_id, run.step, run.attempt, run.playbook)
    try:
        runner = ansible_runner.run(
            private_data_dir=str(run.private_data_dir),
            project_dir=str(run.playbooks_dir),
            playbook=str(playbook_path),
            inventory=str(run.inventory),
            ident=run.ident,
            envvars=envvars,
            tags=",".join(run.tags) or None,
            cmdline="--check" if run.check_mode else None,
            event_handler=handle,
            cancel_callback=watch,
            quiet=True,
        )
        rc = int(runner.rc) if runner.rc is not None else -1
        status = _STATUS.get(str(runner.status), PlaybookStatus.FAILED)
        stats = runner.stats
    except Exception as exc:
        crash = masker.mask(shorten(f"{type(exc).__name__}: {exc}"))
        log.error("job %s: ansible-runner failed to run %s: %s", run.job_id, run.playbook, crash)
    finally:
        leftovers = reap_leftovers(private_data_dir=run.private_data_dir)
        if leftovers:
            log.warning("job %s: killed %d leftover Ansible processes", run.job_id, len(leftovers))
        scrub_private_data_dir(private_data_dir=run.private_data_dir, masker=masker)
        prune_job_dirs(
            artifacts_root=run.artifacts_root, keep=defaults.ANSIBLE_ARTIFACTS_KEEP, protect=run.job_id
        )

    if watch.requested:
        status = PlaybookStatus.CANCELED
    error: str | None = None
    failed_task = failed_host = None
    if status is not PlaybookStatus.SUCCESSFUL:
        failed_task, failed_host = translator.failed_task, translator.failed_host
        if status is PlaybookStatus.CANCELED:
            error = "canceled"
        elif status is PlaybookStatus.TIMEOUT:
            error = "timed out"
        else:
            error = translator.error or crash or masker.mask_optional(_stdout_tail(run)) or f"rc {rc}"
    result = PlaybookResult(
        status=status,
        rc=rc,
        changed=_sum(stats, "changed"),
        failed=_sum(stats, "failures"),
        ok=_sum(stats, "ok"),
        unreachable=_sum(stats, "dark"),
        failed_task=failed_task,
        failed_host=failed_host,
        error=error,
    )
    log.info(
        "job %s: step %s attempt %d %s (rc %d, changed %d, failed %d)",
        run.job_id,
        run.step,
        run.attempt,
        result.status.value,
        rc,
        result.changed,
        result.failed,
    )
    return result


def syntax_check(playbook: Path, *, inventory: Path | None = None) -> None:
    """Raise ValueError naming the problem when `ansible-playbook --syntax-check` refuses `playbook`."""
    command = [str(Path(_venv_bin()) / "ansible-playbook"), "--syntax-check"]
    if inventory is not None:
        command += ["-i", str(inventory)]
    command.append(str(playbook))
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([_venv_bin(), env.get("PATH", os.defpath)])
    env["ANSIBLE_NOCOLOR"] = "1"
    completed = subprocess.run(  # nosec B603  # kobot's own ansible-playbook, an argv list, no shell
        command,
        capture_output=True,
        text=True,
        timeout=SYNTAX_CHECK_TIMEOUT_SECONDS,
        env=env,
        cwd=playbook.parent,
        check=False,
    )
    if completed.returncode != 0:
        output = (completed.stderr or completed.stdout).strip()
        raise ValueError(f"{playbook.name}: {output}")
