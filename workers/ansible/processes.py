"""Finding and stopping the processes of one Ansible run.

ansible-runner SIGKILLs the process group of ansible-playbook on cancel, but Ansible's workers call
`setsid()` and would survive as orphans (still changing hosts). Every process of a run carries the
marker variable `RUN_MARKER_ENV` in its environment, so the run's processes are found through /proc
whatever their session or parent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

RUN_MARKER_ENV = "KOBOT_ANSIBLE_RUN"
"""Environment variable set to the private data dir for every process of a run."""

REAP_TIMEOUT_SECONDS = 2.0
"""How long the runner waits for killed leftovers of a run to disappear."""

_PROC = Path("/proc")


def _environ(pid: int) -> bytes:
    try:
        return (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return b""


def _cmdline(pid: int) -> bytes:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def _parent(pid: int) -> int | None:
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _is_zombie(pid: int) -> bool:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _pids() -> list[int]:
    return [int(entry.name) for entry in _PROC.iterdir() if entry.name.isdigit()]


def run_processes(*, private_data_dir: Path) -> list[int]:
    """Live processes (not zombies) that belong to the run using `private_data_dir`."""
    marker = b"\0" + f"{RUN_MARKER_ENV}={private_data_dir}".encode() + b"\0"
    me = os.getpid()
    return [
        pid
        for pid in _pids()
        if pid != me and marker in b"\0" + _environ(pid) + b"\0" and not _is_zombie(pid)
    ]


def playbook_process(*, private_data_dir: Path) -> int | None:
    """The ansible-playbook process of the run: started by this process, marked with the run's dir."""
    me = os.getpid()
    for pid in run_processes(private_data_dir=private_data_dir):
        if _parent(pid) == me and b"ansible-playbook" in _cmdline(pid):
            return pid
    return None


def signal_process(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def reap_leftovers(*, private_data_dir: Path, timeout: float = REAP_TIMEOUT_SECONDS) -> list[int]:
    """SIGKILL whatever of the run is still alive; returns the pids that had to be killed."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = run_processes(private_data_dir=private_data_dir)
        if not alive:
            break
        for pid in alive:
            signal_process(pid, signal.SIGKILL)
            if pid not in killed:
                killed.append(pid)
        time.sleep(0.05)
    return killed
