"""`kobot serve` builds its alert pipeline once it answers: the webhook must not wait for it, nor lose
what comes first, and a restart must still deliver what the previous process stored."""

from __future__ import annotations

import asyncio
import threading
import types
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from alerts import defaults
from bot.app import create_app
from bot.runtime import AlertPipeline, build_runtime
from kobot.settings import Settings
from kobot.settings_alerts import AlertsSettings
from tests.peers.recorder import PLATFORM, ChatRecorder, RecorderAdapter
from tests.support.alertmanager import webhook_body
from tests.support.alerts_server import OPS
from tests.support.asgi import serve
from tests.support.waiting import wait_for

TOKEN = "t" * 32


def _settings(redis_url: str, data_dir: Path) -> Settings:
    return Settings(
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        in_process_worker=False,
        alerts=AlertsSettings(webhook_bearer_token=SecretStr(TOKEN), default_targets=[OPS]),
    )


def test_an_alert_posted_before_the_pipeline_is_built_is_stored_at_once_and_delivered_once(
    redis_url: str, data_dir: Path, recorder: ChatRecorder
) -> None:
    settings = _settings(redis_url, data_dir)
    runtime = build_runtime(settings, handlers=False)
    runtime.adapters[PLATFORM] = RecorderAdapter(url=recorder.url)
    app = create_app(settings, runtime=runtime)
    pipeline = runtime.alerts
    assert isinstance(pipeline, AlertPipeline)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with serve(app) as url:
        refused = httpx.post(f"{url}{defaults.WEBHOOK_PATH}", json=webhook_body(), timeout=10)
        stored = httpx.post(f"{url}{defaults.WEBHOOK_PATH}", json=webhook_body(), headers=headers, timeout=10)
        built_when_stored = pipeline.is_built
        wait_for(lambda: recorder.posts, what="the alert group's message")
    assert refused.status_code == 401, "the webhook's credentials hold before the pipeline is built"
    assert stored.status_code == 200 and stored.json()["status"] == "stored", stored.text
    assert not built_when_stored, "the post was answered before the pipeline was built"
    assert pipeline.is_built
    assert len(recorder.posts) == 1


def test_a_pipeline_never_built_stops_cleanly(redis_url: str, data_dir: Path, recorder: ChatRecorder) -> None:
    """Stopped before its start delay: the store's client closes, and nothing is built on the way out."""
    settings = _settings(redis_url, data_dir)
    runtime = build_runtime(settings, handlers=False)
    app = create_app(settings, runtime=runtime)
    pipeline = runtime.alerts
    assert isinstance(pipeline, AlertPipeline)
    with serve(app):
        pass
    assert not pipeline.is_built


class _Closable:
    def __init__(self) -> None:
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


class _StandInService:
    """What the pipeline's stop touches of a built service."""

    def __init__(self) -> None:
        self.redis = _Closable()
        self.stopped = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True
        await self.redis.aclose()


async def test_a_stop_during_the_build_waits_for_it_and_stops_what_it_built() -> None:
    """The build runs on a thread that a cancel cannot stop: the pipeline's stop waits for it and stops
    the service it made, and nothing is built after the stop."""
    building = threading.Event()
    release = threading.Event()
    made = _StandInService()

    def build() -> _StandInService:
        building.set()
        assert release.wait(timeout=30)
        return made

    store = types.SimpleNamespace(redis=_Closable())
    pipeline = AlertPipeline(store=store, build=build, start_delay=0.0)  # type: ignore[arg-type]
    await pipeline.start()
    assert await asyncio.to_thread(building.wait, 30)
    stopping = asyncio.create_task(pipeline.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done(), "the stop waits for the build on its thread"
    release.set()
    await asyncio.wait_for(stopping, timeout=30)
    assert made.stopped and made.redis.closed, "the service built during the stop was stopped"

    def never() -> _StandInService:
        raise AssertionError("built after the stop")

    unbuilt = AlertPipeline(store=types.SimpleNamespace(redis=_Closable()), build=never, start_delay=60.0)  # type: ignore[arg-type]
    await unbuilt.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        await unbuilt.service()
