"""Store clients write any string: one UTF-8 cannot encode becomes its escape instead of an error."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from kobot.settings import Settings
from kobot.store import open_store


def test_a_lone_surrogate_never_fails_a_store_write(redis_url: str, data_dir: Path) -> None:
    store = open_store(Settings(redis_url=SecretStr(redis_url), data_dir=data_dir))
    try:
        client = store.client()
        client.set("kobot:test:user:U0\udfff", "name\ud83d")
        assert client.get("kobot:test:user:U0\udfff") == b"name\\ud83d"
        assert client.exists("kobot:test:user:U0\\udfff") == 1, "the same string always makes the same key"
    finally:
        store.close()
