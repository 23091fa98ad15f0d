"""Where etcd backups may be kept besides kobot's own disk: SFTP servers, S3-compatible buckets, and
directories mounted on kobot's machine (an NFS export). Each target has a name that a schedule or a
one-off `backup prod target=NAME` chooses; `local` (kobot's data dir) is always there.

Secrets (an SFTP password, an S3 secret key) are SecretStr: never logged, never shown in chat.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from kobot.validation import time_zone

LOCAL_TARGET = "local"
"""The target every kobot has: `<data_dir>/backups/<cluster>/`."""

TARGET_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
"""A target name as chat says it (`target=offsite`)."""

PREFIX = re.compile(r"[A-Za-z0-9._/-]{0,200}")
"""A remote folder or key prefix: plain path characters, no `..` component (checked separately)."""


def _plain_prefix(value: str) -> str:
    cleaned = value.strip("/")
    if not PREFIX.fullmatch(cleaned) or any(
        part in ("", ".", "..") for part in cleaned.split("/") if cleaned
    ):
        raise ValueError("must be a plain path of letters, digits and . _ - / without `..` or empty parts")
    return cleaned


class SftpTarget(BaseModel):
    """Any SSH server with SFTP. The server's key must be in `known_hosts_file`: kobot never trusts a
    host key it has not been given."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(min_length=1)
    path: str = "kobot-backups"
    """Folder on the server (relative to the login directory unless it starts with /)."""
    key_file: Path | None = None
    """Private key file (a path; the key never enters kobot's data)."""
    password: SecretStr | None = None
    known_hosts_file: Path

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        absolute = value.startswith("/")
        cleaned = _plain_prefix(value)
        return f"/{cleaned}" if absolute else cleaned

    @model_validator(mode="after")
    def _credentials(self) -> SftpTarget:
        if self.key_file is None and self.password is None:
            raise ValueError("give key_file or password")
        return self


class S3Target(BaseModel):
    """An S3-compatible bucket (AWS, MinIO, Ceph RGW, ...), signed with AWS Signature Version 4."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint_url: str = Field(pattern=r"^https?://[^\s/]+(:[0-9]+)?/?$")
    """Scheme, host and port only (path-style requests: `<endpoint>/<bucket>/<key>`)."""
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = "kobot-backups"
    region: str = Field(default="us-east-1", pattern=r"^[a-z0-9-]{1,40}$")
    access_key_id: str = Field(min_length=1)
    secret_access_key: SecretStr
    verify_tls: bool = True

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return _plain_prefix(value)


class DirectoryTarget(BaseModel):
    """A directory on kobot's machine, typically an NFS export mounted there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value


class BackupSettings(BaseModel):
    """`KOBOT_BACKUPS__...`: the named places backups may go (`local` is built in)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sftp: dict[str, SftpTarget] = Field(default_factory=dict)
    s3: dict[str, S3Target] = Field(default_factory=dict)
    nfs: dict[str, DirectoryTarget] = Field(default_factory=dict)
    schedule_timezone: str = "UTC"
    """The zone `every day at 02:00` is read in."""

    @model_validator(mode="after")
    def _unique_names(self) -> BackupSettings:
        seen: dict[str, str] = {}
        for kind, names in (("sftp", self.sftp), ("s3", self.s3), ("nfs", self.nfs)):
            for name in names:
                if not TARGET_NAME.fullmatch(name):
                    raise ValueError(
                        f"{kind} target {name!r}: a name is a-z, 0-9 and -, starting with a letter"
                    )
                if name == LOCAL_TARGET:
                    raise ValueError(
                        f"{kind} target: {LOCAL_TARGET!r} is kobot's own disk; pick another name"
                    )
                if name in seen:
                    raise ValueError(f"target {name!r} is both {seen[name]} and {kind}; names must differ")
                seen[name] = kind
        return self

    @field_validator("schedule_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return time_zone(value)

    def names(self) -> list[str]:
        """Every target a schedule may choose, `local` first."""
        return [LOCAL_TARGET, *sorted([*self.sftp, *self.s3, *self.nfs])]
