"""Message center: channels that asked with `notify <cluster> job here` hear of that cluster's jobs
(real dispatcher, real job, real alert service delivery; the chat is the recording adapter)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.dispatcher import Dispatcher
from bot.relay import ClusterEventRelay
from bot.runtime import Runtime, build_runtime
from kobot.conversations import Conversation, Identity, InboundMessage
from kobot.settings import Settings
from tests.bot.recording_adapter import RecordingAdapter
from tests.support.dispatching import with_recorded_terminal_and_alerts
from tests.workers.jobkit import FIXTURE_PLAYBOOKS, job_service, run_queue

ME = Identity(platform="terminal", user_id="ops")
WHERE_JOBS_RUN = Conversation(platform="terminal", conversation_id="local")
WATCHERS = Conversation(platform="terminal", conversation_id="watchers")


@pytest.fixture
def runtime(redis_url: str, data_dir: Path) -> Iterator[Runtime]:
    settings = Settings(
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        playbooks_dir=FIXTURE_PLAYBOOKS,
        plugins=["tests.fixtures.operations"],
        in_process_worker=False,
    )
    rt = with_recorded_terminal_and_alerts(build_runtime(settings))
    yield rt
    rt.close()


async def test_job_notices_reach_subscribed_channels(runtime: Runtime, data_dir: Path) -> None:
    adapter = runtime.adapters["terminal"]
    assert isinstance(adapter, RecordingAdapter) and runtime.alerts is not None
    dispatcher = Dispatcher(runtime=runtime)
    relay = ClusterEventRelay(redis=runtime.redis, alerts=runtime.alerts)
    await runtime.alerts.start()
    await relay.start()
    try:
        await dispatcher.on_message(
            InboundMessage(identity=ME, conversation=WATCHERS, text="notify demo job here")
        )
        await dispatcher.on_message(
            InboundMessage(identity=ME, conversation=WATCHERS, text="notify other job here")
        )
        marker = data_dir / "marker"
        marker.touch()
        await dispatcher.on_message(
            InboundMessage(identity=ME, conversation=WHERE_JOBS_RUN, text=f"test steps demo marker={marker}")
        )
        await asyncio.to_thread(run_queue, job_service(runtime.settings, runtime.redis))

        def notices() -> list[str]:
            return [
                d.message.title + " " + (d.message.status or "")
                for d in adapter.deliveries
                if d.ref.conversation_id == "watchers" and d.message.title.startswith("Job 1")
            ]

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("succeeded" in n for n in notices()):
            await asyncio.sleep(0.05)
    finally:
        await relay.stop()
        await runtime.alerts.stop()
    got = notices()
    assert any("running" in n or "queued" in n for n in got), got  # job_started
    assert any("succeeded" in n for n in got), got  # job_succeeded
    assert all("demo" in n for n in got), "only the subscribed cluster's jobs"
