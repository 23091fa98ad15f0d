"""pytest fixtures for the real SSH test hosts. Enable with, in tests/conftest.py:

    pytest_plugins = ["tests.hosts.fixtures"]

`lab_hosts` gives LAB_HOST_COUNT running hosts for the whole session; `host_lab` starts more
(`host_lab.start(count=2)`) or stops one (`host_lab.stop(host)`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hosts.lab import HostLab, LabHost
from tests.hosts.rootfs import ensure_rootfs

LAB_HOST_COUNT = 3
"""Hosts every session shares: enough for three masters, or a master and two workers."""

WORK_PARENT = Path(tempfile.gettempdir())
"""Overlay upper dirs live here; short paths keep sshd's and ssh's socket paths short too."""

_shared: list[HostLab] = []
_users: list[int] = [0]


def _acquire_lab() -> HostLab:
    """One lab per test process, even when several test modules import these fixtures."""
    if not _shared:
        work_dir = Path(tempfile.mkdtemp(prefix="kobot-lab-", dir=WORK_PARENT))
        _shared.append(HostLab(rootfs=ensure_rootfs(), work_dir=work_dir).open())
    _users[0] += 1
    return _shared[0]


def _release_lab() -> None:
    _users[0] -= 1
    if _users[0] == 0 and _shared:
        _shared.pop().close()


@pytest.fixture(scope="session")
def host_lab() -> Iterator[HostLab]:
    """The session's lab: namespaces on a private /24, sshd in a Debian bookworm root per host."""
    lab = _acquire_lab()
    try:
        yield lab
    finally:
        _release_lab()


@pytest.fixture(scope="session")
def lab_hosts(host_lab: HostLab) -> list[LabHost]:
    """LAB_HOST_COUNT hosts that answer SSH as root with the session's key, shared by the session."""
    running = host_lab.hosts
    if len(running) < LAB_HOST_COUNT:
        host_lab.start(count=LAB_HOST_COUNT - len(running))
    return host_lab.hosts[:LAB_HOST_COUNT]
