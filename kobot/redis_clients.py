"""Redis clients as kobot opens them: one place, so every connection is set up the same cheap way.

redis-py names itself on each new connection (CLIENT SETINFO) and, unless told its version, reads it
from the installed package's metadata every time: about a millisecond a connection, and the first one
imports importlib.metadata and the email parser (tens of milliseconds) on whichever thread connects
first. In `kobot serve` that was the event loop, under the first chat events after the start."""

from __future__ import annotations

from redis import Redis, __version__
from redis.asyncio import Redis as AsyncRedis
from redis.driver_info import DriverInfo


def driver_info() -> DriverInfo:
    """What a kobot client's connections say they are: redis-py, at the version imported. One per client:
    redis-py's `add_upstream_driver` changes it in place."""
    return DriverInfo(lib_version=__version__)


def sync_client(
    url: str,
    *,
    timeout: float | None = None,
    connect_timeout: float | None = None,
    encoding_errors: str = "strict",
) -> Redis:
    """A blocking client for `url` (bytes in and out; it connects at its first command)."""
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=connect_timeout,
        encoding_errors=encoding_errors,
        driver_info=driver_info(),
    )


def async_client(
    url: str,
    *,
    timeout: float | None = None,
    decode_responses: bool = False,
    encoding_errors: str = "strict",
) -> AsyncRedis:
    """An asyncio client for `url` (it connects at its first command, on the loop that awaits it);
    `timeout` bounds both the connect and each reply."""
    return AsyncRedis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=decode_responses,
        encoding_errors=encoding_errors,
        driver_info=driver_info(),
    )
