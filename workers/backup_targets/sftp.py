"""Any SSH server with SFTP, through paramiko. The server's key must be in the configured known_hosts
file (kobot refuses a host it has not been told about); an upload goes to a partial name and is renamed
once its size matches, so a broken transfer never sits under a backup's name."""

from __future__ import annotations

import contextlib
import posixpath
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from kobot import defaults
from kobot.errors import StepFailedError
from kobot.settings_backups import SftpTarget

if TYPE_CHECKING:  # loaded by the first transfer, not when `kobot serve` starts
    import paramiko


class SftpStore:
    def __init__(self, *, name: str, config: SftpTarget) -> None:
        self.name = name
        self.kind = "sftp"
        self.config = config

    def describe(self) -> str:
        c = self.config
        return f"{self.name} (sftp {c.user}@{c.host}:{c.port} {c.path})"

    def put(self, *, source: Path, key: str, sha256: str) -> None:
        final = self._remote(key)
        partial = posixpath.join(posixpath.dirname(final), f".{posixpath.basename(final)}.part")
        with self._sftp("upload") as sftp:
            _makedirs(sftp, posixpath.dirname(final))
            attrs = sftp.put(str(source), partial, confirm=True)
            if attrs.st_size != source.stat().st_size:
                sftp.remove(partial)
                raise StepFailedError(
                    f"upload of {key} to {self.describe()} came out short", task="sftp upload"
                )
            sftp.chmod(partial, 0o600)
            sftp.posix_rename(partial, final)

    def fetch(self, *, key: str, dest: Path) -> None:
        partial = dest.parent / f".{dest.name}.part"
        with self._sftp("download") as sftp:
            try:
                sftp.get(self._remote(key), str(partial))
            except FileNotFoundError:
                raise StepFailedError(f"{key} is not on {self.describe()}", task="sftp download") from None
        partial.chmod(0o600)
        partial.replace(dest)

    def delete(self, *, key: str) -> None:
        with self._sftp("delete") as sftp, contextlib.suppress(FileNotFoundError):
            sftp.remove(self._remote(key))

    # --- internals ---------------------------------------------------------------------------------
    def _remote(self, key: str) -> str:
        return posixpath.join(self.config.path, key)

    @contextlib.contextmanager
    def _sftp(self, action: str) -> Iterator[paramiko.SFTPClient]:
        import paramiko

        c = self.config
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(str(c.known_hosts_file))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            client.connect(
                c.host,
                port=c.port,
                username=c.user,
                key_filename=str(c.key_file) if c.key_file else None,
                password=c.password.get_secret_value() if c.password else None,
                timeout=defaults.BACKUP_CONNECT_TIMEOUT_SECONDS,
                banner_timeout=defaults.BACKUP_CONNECT_TIMEOUT_SECONDS,
                auth_timeout=defaults.BACKUP_CONNECT_TIMEOUT_SECONDS,
                allow_agent=False,
                look_for_keys=False,
            )
            sftp = client.open_sftp()
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(defaults.BACKUP_TRANSFER_TIMEOUT_SECONDS)
            with sftp:
                yield sftp
        except (paramiko.SSHException, OSError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            # paramiko's messages name hosts and keys, never the password
            raise StepFailedError(
                f"sftp {action} on {self.describe()} failed", task=f"sftp {action}", error=str(exc)[:300]
            ) from None
        finally:
            client.close()


def _makedirs(sftp: paramiko.SFTPClient, path: str) -> None:
    parts = [p for p in path.split("/") if p]
    current = "/" if path.startswith("/") else ""
    for part in parts:
        current = posixpath.join(current, part) if current else part
        try:
            if not stat.S_ISDIR(sftp.stat(current).st_mode or 0):
                raise StepFailedError(f"{current} on the SFTP server is no directory", task="sftp upload")
        except FileNotFoundError:
            sftp.mkdir(current, mode=0o700)
