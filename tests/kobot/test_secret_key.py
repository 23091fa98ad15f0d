"""kobot's secret key: never short, never empty, generated once per data dir."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kobot.errors import SettingsError
from kobot.settings import load_settings
from kobot.store import secret_key

STARTERS = 16
"""Processes starting on one data dir at once."""


def test_a_short_configured_key_stops_the_start_naming_the_setting(data_dir: Path) -> None:
    with pytest.raises(SettingsError, match="KOBOT_SECRET_KEY"):
        load_settings(data_dir=data_dir, secret_key="")


def test_a_generated_key_is_random_kept_and_private(tmp_path: Path) -> None:
    first = secret_key(load_settings(data_dir=tmp_path / "a"))
    assert len(first) >= 32 and secret_key(load_settings(data_dir=tmp_path / "a")) == first
    assert secret_key(load_settings(data_dir=tmp_path / "b")) != first
    assert (tmp_path / "a" / "secret.key").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["secret.key"], "no draft left behind"


def test_an_empty_key_file_is_refused_not_used(data_dir: Path) -> None:
    (data_dir / "secret.key").write_text("")
    with pytest.raises(SettingsError, match="no usable secret key"):
        secret_key(load_settings(data_dir=data_dir))


def test_processes_with_the_same_pid_starting_at_once_share_one_key(tmp_path: Path) -> None:
    """Containers sharing a data volume can have equal pids; threads of one process stand in for them (they
    share a pid too): every one gets the same key, and no draft is left behind."""
    settings = load_settings(data_dir=tmp_path / "shared")
    start = threading.Barrier(STARTERS)
    keys: list[bytes] = []

    def start_up() -> None:
        start.wait()
        keys.append(secret_key(settings))

    threads = [threading.Thread(target=start_up) for _ in range(STARTERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == STARTERS and len(set(keys)) == 1
    assert [p.name for p in (tmp_path / "shared").iterdir()] == ["secret.key"]
