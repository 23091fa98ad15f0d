"""The Redis-protocol store: a configured Redis, or an embedded Valkey that persists under data_dir."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

from redis import Redis
from redis.exceptions import RedisError

from kobot import defaults
from kobot.embedded_valkey import EmbeddedValkey
from kobot.errors import SettingsError, StoreUnavailableError
from kobot.redis_clients import sync_client
from kobot.settings import MIN_SECRET_KEY_CHARS, Settings, secure_data_dir

log = logging.getLogger(__name__)

SECRET_KEY_FILE = "secret.key"  # nosec B105  # the key file's name, not a key

T = TypeVar("T")


ENCODING_ERRORS = "backslashreplace"
"""How a client encodes a string UTF-8 cannot hold (a lone surrogate from a `\\udfff` JSON escape): as
its escape, so the write succeeds and the same string always makes the same key. Adapters drop such
characters at the door; this keeps any that slip past from failing a store write."""


@dataclass
class Store:
    """The connection URL kobot uses, and the embedded server if kobot started one."""

    url: str
    embedded: EmbeddedValkey | None = None
    """The data dir's embedded server (stopped with the store if this process started it)."""
    _clients: list[Redis] = field(default_factory=list)

    def client(self) -> Redis:
        """A new client; RQ needs bytes (decode_responses off), kobot's own code decodes itself."""
        client = sync_client(
            self.url,
            timeout=defaults.REDIS_SOCKET_TIMEOUT_SECONDS,
            connect_timeout=defaults.REDIS_SOCKET_TIMEOUT_SECONDS,
            encoding_errors=ENCODING_ERRORS,
        )
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self.embedded is not None:
            embedded, self.embedded = self.embedded, None
            embedded.stop()


def open_store(settings: Settings) -> Store:
    """Connect to KOBOT_REDIS_URL, or start the embedded Valkey with AOF under data_dir."""
    secure_data_dir(settings.data_dir)
    if settings.redis_url is not None:
        store = Store(url=settings.redis_url.get_secret_value())
    else:
        store = _start_embedded(settings.data_dir / "valkey", maxmemory=settings.valkey_maxmemory)
    _wait_until_answering(store)
    return store


def _start_embedded(data_dir: Path, *, maxmemory: str) -> Store:
    data_dir.mkdir(parents=True, exist_ok=True, mode=defaults.DATA_DIR_MODE)
    data_dir.chmod(defaults.DATA_DIR_MODE)
    socket_path = data_dir / "valkey.sock"
    if len(str(socket_path)) > 100:
        raise SettingsError(f"setting KOBOT_DATA_DIR: path too long for a unix socket: {data_dir}")
    server = EmbeddedValkey(data_dir=data_dir, maxmemory=maxmemory)
    server.start()
    server.watch()
    secure_data_dir(data_dir.parent)
    return Store(url=server.url, embedded=server)


def _wait_until_answering(store: Store) -> None:
    deadline = time.monotonic() + defaults.REDIS_START_TIMEOUT_SECONDS
    # Each try is bounded as well: a server that takes the connection and never answers (a store
    # stopped in a debugger or by SIGSTOP, or a URL pointing at a service that waits for more than a
    # PING) held the start for ever, saying nothing.
    client = sync_client(
        store.url, timeout=defaults.REDIS_PROBE_SECONDS, connect_timeout=defaults.REDIS_PROBE_SECONDS
    )
    try:
        while True:
            try:
                client.ping()
                return
            except RedisError as exc:
                if time.monotonic() > deadline:
                    store.close()
                    raise StoreUnavailableError("the Redis store does not answer", detail=str(exc)) from exc
                time.sleep(0.05)
    finally:
        client.close()


def synced(value: Awaitable[T] | T) -> T:
    """redis-py types every command as `Awaitable[T] | T`; the synchronous client always returns T."""
    return cast(T, value)


def secret_key(settings: Settings) -> bytes:
    """The key that signs button payloads: the setting, or a random one kept in data_dir (mode 0600)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    path = settings.data_dir / SECRET_KEY_FILE
    if not path.exists():
        secure_data_dir(settings.data_dir)
        # Written whole under a temporary name, then linked into place: a crash never leaves an empty key,
        # and of two processes starting at once, the first link wins and both read that key. The draft's
        # name is random, not the pid: containers sharing the data volume can have the same pids, and
        # O_EXCL makes a clash fail loudly instead of two processes writing one file.
        draft = path.with_name(f".{SECRET_KEY_FILE}.{secrets.token_hex(8)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
        draft.unlink()
    key = path.read_text().strip()
    if len(key) < MIN_SECRET_KEY_CHARS:
        raise SettingsError(
            f"setting KOBOT_DATA_DIR: {path} holds no usable secret key; remove it to generate one"
        )
    return key.encode()
