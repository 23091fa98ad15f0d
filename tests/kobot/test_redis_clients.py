"""kobot's Redis clients name redis-py to the server without reading the package's metadata per connection."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.utils

from kobot.redis_clients import async_client, sync_client


@pytest.fixture
def metadata_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts redis-py's per-connection version lookups (the read of the installed package's metadata)."""
    calls: list[str] = []

    def counted() -> str:
        calls.append("lookup")
        return "0.0.0"

    monkeypatch.setattr(redis.utils, "get_lib_version", counted)
    return calls


def test_sync_client_connections_name_redis_py_without_a_metadata_lookup(
    redis_url: str, metadata_lookups: list[str]
) -> None:
    client = sync_client(redis_url, timeout=5.0, connect_timeout=5.0)
    try:
        info = client.client_info()
    finally:
        client.close()
    assert info["lib-name"] == "redis-py"
    assert info["lib-ver"] == redis.__version__
    assert metadata_lookups == []


def test_async_client_connections_name_redis_py_without_a_metadata_lookup(
    redis_url: str, metadata_lookups: list[str]
) -> None:
    async def info_of_new_connections() -> list[dict[str, object]]:
        client = async_client(redis_url, timeout=5.0, decode_responses=True)
        try:
            # two at once: the pool opens a second connection, which must not look the version up either
            return list(await asyncio.gather(client.client_info(), client.client_info()))
        finally:
            await client.aclose()

    for info in asyncio.run(info_of_new_connections()):
        assert info["lib-name"] == "redis-py"
        assert info["lib-ver"] == redis.__version__
    assert metadata_lookups == []


def test_the_lookup_counter_sees_a_client_built_the_default_way(
    redis_url: str, metadata_lookups: list[str]
) -> None:
    """The check above can fail: a client made without kobot's driver info does look the version up."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.ping()
    finally:
        client.close()
    assert metadata_lookups
