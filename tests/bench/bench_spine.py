"""The spine's figures: parse+authorize+enqueue, job event to chat edit.

Targets (issue: the spine): dispatch p99 < 5 ms; event→edit < 50 ms beyond the throttle window.
`kobot serve`'s start and memory are bench_serve_start's.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from bot.dispatcher import Dispatcher
from bot.notifier import Notifier
from bot.runtime import build_runtime
from kobot.conversations import Conversation, Identity, InboundMessage
from kobot.job_records import JobEvent, JobEventType
from kobot.settings import Settings
from tests.bench.figures import percentile
from tests.bot.recording_adapter import RecordingAdapter

REPO = Path(__file__).resolve().parents[2]
DISPATCHES = 300
EVENTS = 200


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="kb-", dir="/tmp") as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "d",
            playbooks_dir=REPO / "tests" / "fixtures" / "playbooks",
            plugins=["tests.fixtures.operations"],
            in_process_worker=False,
        )
        runtime = build_runtime(settings)
        try:
            figures.update(asyncio.run(_dispatch(runtime)))
            figures.update(asyncio.run(_event_to_edit(runtime)))
        finally:
            runtime.close()
    return figures


async def _dispatch(runtime) -> dict[str, float]:  # type: ignore[no-untyped-def]
    adapter = RecordingAdapter("terminal")
    runtime.adapters["terminal"] = adapter
    dispatcher = Dispatcher(runtime=runtime)
    who = Identity(platform="terminal", user_id="bench")
    where = Conversation(platform="terminal", conversation_id="local")
    samples = []
    for i in range(DISPATCHES):
        message = InboundMessage(identity=who, conversation=where, text=f"test steps c{i} marker=/tmp/m")
        started = time.perf_counter()
        await dispatcher.on_message(message)
        samples.append((time.perf_counter() - started) * 1000)
    assert len(runtime.queue) == DISPATCHES, "every dispatch must have queued a job"
    return {
        "dispatch (parse+authorize+enqueue) p50 ms": percentile(samples, 0.5),
        "dispatch (parse+authorize+enqueue) p99 ms": percentile(samples, 0.99),
    }


async def _event_to_edit(runtime) -> dict[str, float]:  # type: ignore[no-untyped-def]
    adapter = RecordingAdapter("terminal")
    notifier = Notifier(redis=runtime.redis, adapter=adapter, edit_interval=0.0)
    await notifier.start()
    job_id = "1"
    samples = []
    try:
        await asyncio.sleep(0.3)  # the backlog of queued-job events from the dispatch figures
        for _ in range(EVENTS):
            count = len(adapter.deliveries)
            started = time.perf_counter()
            runtime.jobs.events.publish(JobEvent(job_id=job_id, type=JobEventType.TASK_STARTED, task="bench"))
            while len(adapter.deliveries) == count:
                await asyncio.sleep(0.0005)
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        await notifier.stop()
    return {
        "job event → chat edit p50 ms (beyond throttle)": percentile(samples, 0.5),
        "job event → chat edit p99 ms (beyond throttle)": percentile(samples, 0.99),
    }
