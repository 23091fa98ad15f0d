"""`retry job N` over REST answers with the job it queued again, so a caller can follow it at the jobs
route like any queued command (the real app under uvicorn, a real Valkey and RQ worker)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.app import create_app
from bot.runtime import Runtime
from kobot.job_records import JobState
from tests.bot.test_http_api_commands import CI, command, kobot_settings
from tests.support.asgi import serve
from tests.workers.jobkit import job_service, run_queue


@pytest.fixture
def api(redis_url: str, data_dir: Path) -> Iterator[tuple[httpx.Client, Runtime]]:
    app = create_app(kobot_settings(redis_url, data_dir))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http, app.state.runtime


async def test_a_retried_job_is_answered_queued_with_its_id_and_url(
    api: tuple[httpx.Client, Runtime],
) -> None:
    http, runtime = api
    queued = command(http, {"text": "test steps demo marker=/nonexistent"})
    assert queued.status_code == 202, queued.text
    job_id = queued.json()["job_id"]
    await asyncio.to_thread(run_queue, job_service(runtime.settings, runtime.redis))
    assert runtime.jobs.records.require(job_id).state is JobState.FAILED

    retried = command(http, {"text": f"retry job {job_id}"})

    assert retried.status_code == 202, retried.text
    answer = retried.json()
    assert (answer["outcome"], answer["job_id"], answer["job_url"]) == (
        "queued",
        job_id,
        f"/api/v1/jobs/{job_id}",
    )
    followed = http.get(answer["job_url"], headers=CI).json()
    assert followed["attempt"] == 2 and followed["state"] in ("queued", "waiting")
