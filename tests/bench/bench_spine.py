"""The spine's figures: parse+authorize+enqueue, job event to chat edit, `kobot serve` start and memory.

Targets (issue: the spine): dispatch p99 < 5 ms; event→edit < 50 ms beyond the throttle window;
serve ready < 1 s and < 120 MB resident. Start and memory come with a floor from the same run (a bare
FastAPI app under uvicorn), which `make bench` prints beside them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bot.dispatcher import Dispatcher
from bot.notifier import Notifier
from bot.runtime import build_runtime
from kobot.conversations import Conversation, Identity, InboundMessage
from kobot.job_records import JobEvent, JobEventType
from kobot.settings import Settings
from tests.bench.figures import percentile, resident_mb
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
    figures.update(_serve_start())
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


FLOOR_SERVER = (
    "import sys, fastapi, uvicorn\n"
    "app = fastapi.FastAPI()\n"
    "app.get('/healthz')(lambda: {'status': 'ok'})\n"
    "uvicorn.run(app, host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')\n"
)
"""The floor of `kobot serve`'s start: this interpreter importing FastAPI and uvicorn, serving one route."""


def _serve_start() -> dict[str, float]:
    kobot = _time_to_ready(lambda port: [sys.executable, "-m", "bot.cli", "serve"])
    floor = _time_to_ready(lambda port: [sys.executable, "-c", FLOOR_SERVER, str(port)])
    return {
        "kobot serve time to ready s": kobot[0],
        "kobot serve time to ready s__floor": floor[0],
        "kobot serve resident memory MB": kobot[1],
        "kobot serve resident memory MB__floor": floor[1],
    }


def _time_to_ready(command: Callable[[int], list[str]]) -> tuple[float, float]:
    """Seconds from spawn to /healthz answering 200, and the resident MB half a second later."""
    with tempfile.TemporaryDirectory(prefix="ks-", dir="/tmp") as tmp, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KOBOT_")}
        env.update({"KOBOT_DATA_DIR": f"{tmp}/d", "KOBOT_HTTP_PORT": str(port), "KOBOT_LOG_LEVEL": "WARNING"})
        started = time.perf_counter()
        process = subprocess.Popen(
            command(port),
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            ready = None
            while time.perf_counter() - started < 30:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                        ready = time.perf_counter() - started
                        break
                except httpx.HTTPError:
                    time.sleep(0.02)
            time.sleep(0.5)
            rss_mb = resident_mb(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=20)
    return (ready if ready is not None else float("nan"), rss_mb)
