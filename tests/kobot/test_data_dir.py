"""kobot's data dir and its embedded Valkey: owner-only files, and a memory limit that never evicts."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import OutOfMemoryError

from kobot import defaults
from kobot.settings import load_settings
from kobot.store import Store, open_store
from tests.support.waiting import wait_for


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short path: the embedded Valkey's unix socket path must stay under ~100 characters."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kobot-dd-") as path:
        yield Path(path)


def _modes(root: Path) -> dict[str, int]:
    return {
        str(path.relative_to(root)): path.stat().st_mode & 0o777
        for path in [root, *root.rglob("*")]
        if not path.is_symlink()
    }


def test_embedded_store_keeps_the_data_dir_and_its_files_owner_only(short_dir: Path) -> None:
    data_dir = short_dir / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)  # as an older kobot (or a umask of 022) left it
    log_file = data_dir / "kobot.log"
    log_file.write_text("a line\n")
    log_file.chmod(0o644)
    previous = os.umask(0o022)  # the usual umask: Valkey would write 0644 files with it
    try:
        store = open_store(load_settings(data_dir=data_dir))
    finally:
        os.umask(previous)
    try:
        client = store.client()
        client.set("kobot:test:audit", "who did what")
        client.execute_command("BGREWRITEAOF")
        # walk the folder once the rewrite is done: its temp files come and go while it runs
        wait_for(lambda: _rewrite_done(client), timeout=30, what="the AOF rewrite to finish")
        modes = _modes(data_dir)
        files = [
            p for p in [data_dir, *data_dir.rglob("*")] if p.is_file() and not stat.S_ISSOCK(p.stat().st_mode)
        ]
        assert any(p.parent.name == "appendonlydir" for p in files), sorted(modes)
        assert modes["."] == defaults.DATA_DIR_MODE and modes["valkey"] == defaults.DATA_DIR_MODE
        leaky = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
        assert leaky == {}, leaky
        assert all(p.stat().st_mode & 0o777 == defaults.DATA_FILE_MODE for p in files), modes
    finally:
        store.close()


def _rewrite_done(client: Redis) -> bool:
    persistence: dict[str, object] = client.info("persistence")  # type: ignore[assignment]
    return not persistence.get("aof_rewrite_in_progress") and not persistence.get("aof_rewrite_scheduled")


def _config(store: Store, name: str) -> str:
    client: Redis = store.client()
    value = client.config_get(name)[name]
    return value.decode() if isinstance(value, bytes) else str(value)


def test_embedded_valkey_has_a_memory_limit_and_never_evicts(short_dir: Path) -> None:
    store = open_store(load_settings(data_dir=short_dir / "data"))
    try:
        assert _config(store, "maxmemory") == str(1024**3), "the named default, 1gb"
        assert _config(store, "maxmemory-policy") == "noeviction"
    finally:
        store.close()


def test_the_memory_limit_is_a_setting_and_refuses_nonsense(short_dir: Path) -> None:
    from kobot.errors import SettingsError

    store = open_store(load_settings(data_dir=short_dir / "data", valkey_maxmemory="64mb"))
    try:
        assert _config(store, "maxmemory") == str(64 * 1024**2)
        client = store.client()
        client.set("kobot:job:1", "x" * 1024, ex=60)
        # noeviction: a write past the limit fails loudly; the record with a TTL stays
        with pytest.raises(OutOfMemoryError, match="maxmemory"):
            for index in range(200):
                client.set(f"kobot:flood:{index}", "y" * 1024 * 1024)
        assert client.get("kobot:job:1") == b"x" * 1024
    finally:
        store.close()
    for bad in ("0", "lots", "-1gb", "1tb"):
        with pytest.raises(SettingsError, match="KOBOT_VALKEY_MAXMEMORY"):
            load_settings(data_dir=short_dir / "data", valkey_maxmemory=bad)


def test_compose_redis_never_evicts_and_the_bot_is_published_on_loopback() -> None:
    import yaml

    compose = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())
    command = compose["services"]["valkey"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--maxmemory") + 1] == defaults.VALKEY_MAXMEMORY_DEFAULT
    for service in compose["services"].values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port
