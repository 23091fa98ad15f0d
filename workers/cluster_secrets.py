"""Per-cluster secrets (admin kubeconfig, VRRP password, ...) kept encrypted in Redis.

Encrypted with a key derived from kobot's secret key, so a Redis dump or an AOF file alone reveals
nothing. Plaintext only ever exists in memory or, for an instant, in a 0600 file a playbook wrote.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from redis import Redis

from kobot import keys
from kobot.errors import KobotError
from kobot.store import secret_key, synced
from workers.context import StepContext

GENERATED_SECRET_BYTES = 24
"""Entropy of generated cluster passwords (URL-safe, so any config file can hold them)."""

KUBECONFIG_SECRET = "admin-kubeconfig"  # nosec B105  # a secret's name in the store, not its value
KEEPALIVED_SECRET = "keepalived-auth"  # nosec B105  # a secret's name in the store, not its value


class ClusterSecrets:
    """Encrypted name → value store per cluster."""

    def __init__(self, *, redis: Redis, secret: bytes) -> None:
        self._redis = redis
        derived = hashlib.sha256(b"kobot/cluster-secrets/v1\0" + secret).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def put(self, *, cluster: str, name: str, value: bytes) -> None:
        self._redis.hset(keys.cluster_secrets(cluster), name, self._fernet.encrypt(value).decode())

    def get(self, *, cluster: str, name: str) -> bytes | None:
        token: bytes | str | None = synced(self._redis.hget(keys.cluster_secrets(cluster), name))
        if token is None:
            return None
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise KobotError(
                f"the stored {name} of cluster {cluster} cannot be decrypted: kobot's secret key changed"
            ) from None

    def put_if_absent(self, *, cluster: str, name: str, value: bytes) -> bytes:
        """Keep `value` unless the secret exists; the one kept (of two writers racing, the first)."""
        self._redis.hsetnx(keys.cluster_secrets(cluster), name, self._fernet.encrypt(value).decode())
        stored = self.get(cluster=cluster, name=name)
        assert stored is not None
        return stored

    def get_or_create_password(self, *, cluster: str, name: str) -> str:
        existing = self.get(cluster=cluster, name=name)
        if existing is not None:
            return existing.decode()
        value = secrets.token_urlsafe(GENERATED_SECRET_BYTES)
        # HSETNX: two jobs racing must end with one password, not two.
        self._redis.hsetnx(keys.cluster_secrets(cluster), name, self._fernet.encrypt(value.encode()).decode())
        stored = self.get(cluster=cluster, name=name)
        assert stored is not None
        return stored.decode()

    def names(self, *, cluster: str) -> list[str]:
        return sorted(n.decode() for n in synced(self._redis.hkeys(keys.cluster_secrets(cluster))))

    def drop(self, *, cluster: str) -> None:
        self._redis.delete(keys.cluster_secrets(cluster))


class SealedJobFile:
    """A job file that may hold secrets (an addon's rendered Secrets, kobot's webhook token in an
    Alertmanager config), written encrypted under a key kobot's secret key derives, mode 0600: a
    job's work dir is kept for a retry, and its plaintext must not sit on disk meanwhile."""

    def __init__(self, *, path: Path, secret: bytes) -> None:
        self.path = path
        derived = hashlib.sha256(b"kobot/job-files/v1\0" + secret).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def write(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self._fernet.encrypt(data))

    def read(self) -> bytes | None:
        """The file's plaintext; None when it is missing or was sealed under another key."""
        try:
            return self._fernet.decrypt(self.path.read_bytes())
        except (FileNotFoundError, InvalidToken):
            return None

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def sealed_job_file(ctx: StepContext, name: str) -> SealedJobFile:
    """`name` in the step's work dir, sealed under the key kobot's settings derive."""
    return SealedJobFile(path=ctx.work_dir / name, secret=secret_key(ctx.settings))


def cluster_secrets_for(ctx: StepContext) -> ClusterSecrets:
    """The secrets of the step's cluster, under the key kobot's settings derive."""
    return ClusterSecrets(redis=ctx.redis, secret=secret_key(ctx.settings))
