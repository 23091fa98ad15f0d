"""Opening the store at start: one that never answers fails the start with a clear error, in bounded time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from kobot import defaults
from kobot.errors import StoreUnavailableError
from kobot.settings import Settings
from kobot.store import open_store
from tests.support.network import LOOPBACK
from tests.support.network import silent_listener as silent_store_port
from tests.support.waiting import outcome_within

START_TIMEOUT_SECONDS = 1.5
"""The start's wait for the store, shortened for the test."""
HANG_SECONDS = 30.0
"""How long the test lets an open run before it calls it hung (the bounded open ends within about 5 s)."""


@pytest.fixture
def silent_listener() -> Iterator[int]:
    with silent_store_port() as port:
        yield port


def test_a_store_that_takes_the_connection_and_never_answers_fails_the_start(
    silent_listener: int, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defaults, "REDIS_START_TIMEOUT_SECONDS", START_TIMEOUT_SECONDS)
    settings = Settings(redis_url=SecretStr(f"redis://{LOOPBACK}:{silent_listener}/0"), data_dir=data_dir)
    outcome = outcome_within(lambda: open_store(settings).close(), HANG_SECONDS, what="opening the store")
    assert isinstance(outcome, StoreUnavailableError)
    assert outcome.user_message == "the Redis store does not answer"
    assert "Timeout" in str(outcome)  # the detail: what the last try met


def test_a_store_that_answers_opens(redis_url: str, data_dir: Path) -> None:
    store = open_store(Settings(redis_url=SecretStr(redis_url), data_dir=data_dir))
    try:
        assert store.client().ping()
    finally:
        store.close()
