"""A directory on kobot's machine: kobot's own data dir (`local`) or a mounted NFS export."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kobot import automation_values
from kobot.errors import StepFailedError


class DirectoryStore:
    """Snapshots as files under `root`, written to a hidden partial name, synced, then renamed."""

    def __init__(self, *, name: str, kind: str, root: Path) -> None:
        self.name = name
        self.kind = kind
        self.root = root

    def describe(self) -> str:
        return f"{self.name} ({self.kind} {self.root})"

    def path_of(self, key: str) -> Path:
        cluster, _, file = key.partition("/")
        return automation_values.path_inside(self.root, cluster, file, what="backup file")

    def put(self, *, source: Path, key: str, sha256: str) -> None:
        final = self.path_of(key)
        if final.exists() and final.samefile(source):
            return
        if not self.root.is_dir():
            raise StepFailedError(
                f"backup target {self.describe()} is not there (is the share mounted?)", task="store backup"
            )
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = final.parent / f".{final.name}.part"
        with source.open("rb") as reader, partial.open("wb") as writer:
            shutil.copyfileobj(reader, writer)
            writer.flush()
            os.fsync(writer.fileno())
        partial.chmod(0o600)
        partial.replace(final)

    def fetch(self, *, key: str, dest: Path) -> None:
        source = self.path_of(key)
        if dest.exists() and dest.samefile(source):
            return
        if not source.is_file():
            raise StepFailedError(f"{key} is not on {self.describe()}", task="fetch backup")
        partial = dest.parent / f".{dest.name}.part"
        shutil.copyfile(source, partial)
        partial.chmod(0o600)
        partial.replace(dest)

    def delete(self, *, key: str) -> None:
        self.path_of(key).unlink(missing_ok=True)
