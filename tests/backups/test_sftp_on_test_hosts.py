"""The SFTP target against a real sshd: one of the SSH test hosts, reached with the lab's key and its
known_hosts (strict host key checking), and refused with a known_hosts that does not hold its key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from kobot.errors import StepFailedError
from kobot.settings_backups import SftpTarget
from tests.hosts.lab import LabHost
from workers.backup_targets.sftp import SftpStore


def _store(host: LabHost, *, known_hosts: Path) -> SftpStore:
    config = SftpTarget(
        host=host.address,
        port=host.port,
        user=host.user,
        path="/var/backups/kobot",
        key_file=host.key_path,
        known_hosts_file=known_hosts,
    )
    return SftpStore(name="offsite", config=config)


def test_sftp_put_fetch_delete_on_a_test_host(lab_hosts: list[LabHost], tmp_path: Path) -> None:
    host = lab_hosts[0]
    source = tmp_path / "snap.db"
    source.write_bytes(b"etcd snapshot" * 5000)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    store = _store(host, known_hosts=host.known_hosts_path)
    store.put(source=source, key="prod/prod-20260101-020000.db", sha256=digest)
    dest = tmp_path / "back.db"
    store.fetch(key="prod/prod-20260101-020000.db", dest=dest)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == digest
    store.delete(key="prod/prod-20260101-020000.db")
    with pytest.raises(StepFailedError, match="is not on"):
        store.fetch(key="prod/prod-20260101-020000.db", dest=dest)


def test_sftp_refuses_a_host_whose_key_it_was_not_given(lab_hosts: list[LabHost], tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    source = tmp_path / "snap.db"
    source.write_bytes(b"x")
    with pytest.raises(StepFailedError, match="sftp upload"):
        _store(lab_hosts[0], known_hosts=empty).put(source=source, key="prod/p-1.db", sha256="0" * 64)
