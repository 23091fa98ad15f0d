"""Places an etcd snapshot is kept: kobot's disk, a mounted directory (NFS), an SFTP server, an S3 bucket.

Every target speaks `BackupTarget`; `targets_from_settings` builds the named ones from settings. An
object's key is `<cluster>/<backup-id>.db`, made only by kobot, so retention deletes exactly the keys
kobot recorded and never lists or touches anything else in a bucket or folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from kobot import automation_values
from kobot.errors import KobotError
from kobot.settings import Settings
from kobot.settings_backups import LOCAL_TARGET
from workers.backup_targets.directory import DirectoryStore
from workers.backup_targets.s3 import S3Store
from workers.backup_targets.sftp import SftpStore

LOCAL_DIR = "backups"
"""Folder under the data dir that the `local` target keeps (the same place etcd.py writes snapshots)."""


class BackupTarget(Protocol):
    """One place snapshots go. `put` is atomic (a partial upload is never under the final key),
    `fetch` writes `dest` whole or not at all, `delete` of a missing key is no error. Messages name
    the target by `describe()`, which holds no secret."""

    name: str
    kind: str

    def describe(self) -> str: ...

    def put(self, *, source: Path, key: str, sha256: str) -> None: ...

    def fetch(self, *, key: str, dest: Path) -> None: ...

    def delete(self, *, key: str) -> None: ...


class UnknownTargetError(KobotError):
    """A schedule or a backup names a target the settings do not have."""


def object_key(*, cluster: str, backup_id: str) -> str:
    """`<cluster>/<backup-id>.db`; both parts are checked plain names, so no key leaves its folder."""
    automation_values.cluster_name(cluster)
    automation_values.backup_id(backup_id)
    return f"{cluster}/{backup_id}.db"


def targets_from_settings(settings: Settings) -> dict[str, BackupTarget]:
    """Every configured target by name, `local` first."""
    backups = settings.backups
    targets: dict[str, BackupTarget] = {
        LOCAL_TARGET: DirectoryStore(name=LOCAL_TARGET, kind="local", root=settings.data_dir / LOCAL_DIR)
    }
    for name, nfs in backups.nfs.items():
        targets[name] = DirectoryStore(name=name, kind="nfs", root=nfs.path)
    for name, sftp in backups.sftp.items():
        targets[name] = SftpStore(name=name, config=sftp)
    for name, s3 in backups.s3.items():
        targets[name] = S3Store(name=name, config=s3)
    return targets


def target_named(settings: Settings, name: str) -> BackupTarget:
    """The target called `name`, or an answer that lists the ones there are."""
    targets = targets_from_settings(settings)
    target = targets.get(name)
    if target is None:
        raise UnknownTargetError(f"no backup target {name!r}; configured: {', '.join(targets)}")
    return target
