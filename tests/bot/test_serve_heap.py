"""Once `kobot serve` has attached its handlers, what it loaded leaves the garbage collector's view: full
collections no longer rescan the modules, models and schemas of a process that lives for months."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

import bot.app
import bot.runtime
from bot.app import create_app
from bot.runtime import build_runtime
from kobot.defaults import AFTER_START_LOADS_WAIT_SECONDS
from kobot.settings import Settings
from tests.support.fresh_python import run_fresh
from tests.workers.jobkit import FIXTURE_PLAYBOOKS

FREEZE_WAIT_SECONDS = AFTER_START_LOADS_WAIT_SECONDS + 30.0
"""Longest the handlers' load may take on a busy machine: its bounded wait for the other after-start loads,
and the load itself."""


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """This test process's heap back in the collector's view before and after."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def _settings_loading_handlers_at_once(
    redis_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setattr(bot.app, "HANDLERS_LOAD_DELAY_SECONDS", 0.0)
    return Settings(
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        playbooks_dir=FIXTURE_PLAYBOOKS,
        in_process_worker=False,
    )


async def test_what_serve_loaded_is_frozen_once_handlers_are_attached(
    redis_url: str, data_dir: Path, unfrozen: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings_loading_handlers_at_once(redis_url, data_dir, monkeypatch)
    app = create_app(settings, runtime=build_runtime(settings, handlers=False), freeze_heap=True)
    assert gc.get_freeze_count() == 0
    async with app.router.lifespan_context(app):
        deadline = time.monotonic() + FREEZE_WAIT_SECONDS
        while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        # the app and its runtime are among what was frozen, and the dispatcher built beside the handlers
        assert gc.get_freeze_count() > 0
        dispatcher, _ = app.state.supervisor.dispatching.built()
        assert all(seen is not app and seen is not dispatcher for seen in gc.get_objects())


async def test_an_app_built_without_freeze_heap_leaves_the_heap_to_the_collector(
    redis_url: str, data_dir: Path, unfrozen: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only `kobot serve` freezes: a process that builds apps among other work (a test run) would keep
    whatever garbage it held at that moment forever."""
    settings = _settings_loading_handlers_at_once(redis_url, data_dir, monkeypatch)
    app = create_app(settings, runtime=build_runtime(settings, handlers=False))
    async with app.router.lifespan_context(app):
        deadline = time.monotonic() + FREEZE_WAIT_SECONDS
        while not bot.runtime._handlers_loaded.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert bot.runtime._handlers_loaded.is_set()
        await asyncio.sleep(0.1)  # the load's coroutine has run to its end
        assert gc.get_freeze_count() == 0


def test_serve_starts_answering_with_the_collector_on_and_the_start_frozen(tmp_path: Path) -> None:
    """`kobot serve` turns the collector off for its start: it must be on again by the time uvicorn takes
    requests, or every cycle of garbage they leave would stay for good; what the start loaded is frozen.
    Run in a fresh interpreter (uvicorn replaced by a recorder), so this test process's collector is left
    alone."""
    probe = (
        "import gc, sys, uvicorn\n"
        "def record(app, **options):\n"
        "    print(gc.isenabled(), gc.get_freeze_count() > 0)\n"
        "uvicorn.run = record\n"
        "from bot.process import main\n"
        "sys.argv = ['kobot', 'serve']\n"
        "main()\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KOBOT_")}
    env = {**clean, "KOBOT_DATA_DIR": str(tmp_path / "data"), "KOBOT_IN_PROCESS_WORKER": "false"}
    assert run_fresh(probe, env=env) == "True True"
