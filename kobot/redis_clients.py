"""Redis clients as kobot opens them: one place, so every connection is set up the same cheap way.

redis-py names itself on each new connection (CLIENT SETINFO) and, unless told its version, reads it
from the installed package's metadata every time: about a millisecond a connection, and the first one
imports importlib.metadata and the email parser (tens of milliseconds) on whichever thread connects
first. In `kobot serve` that was the event loop, under the first chat events after the start."""

from __future__ import annotations

from redis import Redis, __version__
from redis.asyncio import Redis as AsyncRedis
from redis.driver_info import DriverInfo

DRIVER_INFO = DriverInfo(lib_version=__version__)
"""What every kobot connection says it is: redis-py, at the version imported."""


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
        driver_info=DRIVER_INFO,
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
        driver_info=DRIVER_INFO,
    )
