"""`kobot serve` on its embedded Valkey under signals and kills (real processes, no mocks):

- a SIGTERM to kobot's whole process group (what Ctrl-C or a container stop does) reaches kobot only: it
  stops cleanly and stops the store last;
- a SIGKILLed serve leaves its Valkey running; the next serve does not adopt it silently forever: it
  shuts it down (AOF written), runs its own and stops it when it ends, data kept;
- a Valkey that dies under a running serve is started again: /healthz answers 200 again, data kept;
- a job running when its store dies ends in one final state, released its cluster, and the chat shows it.
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import RedisError

from kobot import keys
from kobot.job_records import JobState
from tests.peers.slack import SlackPeer
from tests.support.kobot_processes import KobotProcesses, processes_mentioning, wait_exit
from tests.support.waiting import wait_for
from tests.workers.jobkit import task_started
from workers.job_store import JobStore

RESTARTED_WITHIN_SECONDS = 15.0
"""The watchdog looks every second; starting Valkey and replaying a small AOF takes well under this."""


@pytest.fixture
def kobot(tmp_path: Path) -> Iterator[KobotProcesses]:
    with SlackPeer(bot_token=f"xoxb-{secrets.token_hex(12)}") as peer:
        processes = KobotProcesses(tmp_path=tmp_path, peer=peer)
        try:
            yield processes
        finally:
            processes.close()


def _valkey_pids(kobot: KobotProcesses) -> list[int]:
    return [
        pid
        for pid in processes_mentioning(str(kobot.data_dir / "valkey"))
        if "valkey" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    ]


def _remember(kobot: KobotProcesses, key: str) -> None:
    client = Redis.from_url(f"unix://{kobot.embedded_socket}")
    try:
        client.set(key, "kept")
    finally:
        client.close()


def _recall(kobot: KobotProcesses, key: str) -> bytes | None:
    client = Redis.from_url(f"unix://{kobot.embedded_socket}")
    try:
        value: bytes | None = client.get(key)  # type: ignore[assignment]
        return value
    finally:
        client.close()


def test_a_group_sigterm_stops_kobot_first_and_its_valkey_last(kobot: KobotProcesses) -> None:
    serve = kobot.start("serve", log_name="serve.log")
    wait_for(kobot.healthy, timeout=30, what="kobot serve answering")
    [valkey] = _valkey_pids(kobot)
    assert os.getpgid(valkey) != os.getpgid(serve.pid), "the store runs in a process group of its own"

    os.killpg(serve.pid, signal.SIGTERM)  # the whole group, as a terminal's Ctrl-C or `docker stop` would
    wait_exit(serve)
    log = kobot.log("serve.log")
    assert serve.returncode in (0, -signal.SIGTERM), log[-3000:]
    assert "Application shutdown complete" in log, log[-3000:]
    assert "Traceback" not in log and "shutdown failed" not in log, log[-3000:]
    assert "stopping embedded valkey" in log, "kobot stopped its store itself, after everything else"
    assert _valkey_pids(kobot) == [], "nothing is left running"


def test_a_valkey_left_by_a_sigkilled_serve_is_taken_over_and_stopped_by_the_next(
    kobot: KobotProcesses,
) -> None:
    first = kobot.start("serve", log_name="first.log")
    wait_for(kobot.healthy, timeout=30, what="the first kobot serve answering")
    _remember(kobot, "kobot:test:kept")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    [orphan] = _valkey_pids(kobot)

    second = kobot.start("serve", log_name="second.log")
    wait_for(kobot.healthy, timeout=30, what="the second kobot serve answering")
    assert "left running by a kobot process that is gone" in kobot.log("second.log")
    [own] = _valkey_pids(kobot)
    assert own != orphan, "the orphan was shut down and a server of this process started"
    assert _recall(kobot, "kobot:test:kept") == b"kept", "the AOF carried the data over"

    second.send_signal(signal.SIGTERM)
    wait_exit(second)
    assert _valkey_pids(kobot) == [], "the serve that took it over stopped it"


def test_a_dead_embedded_valkey_is_started_again_and_health_comes_back(kobot: KobotProcesses) -> None:
    serve = kobot.start("serve", log_name="serve.log")
    wait_for(kobot.healthy, timeout=30, what="kobot serve answering")
    _remember(kobot, "kobot:test:kept")
    [valkey] = _valkey_pids(kobot)

    os.kill(valkey, signal.SIGKILL)
    wait_for(
        lambda: [pid for pid in _valkey_pids(kobot) if pid != valkey],
        timeout=RESTARTED_WITHIN_SECONDS,
        what=f"a new valkey\n{kobot.log('serve.log')[-2000:]}",
    )
    wait_for(kobot.healthy, timeout=RESTARTED_WITHIN_SECONDS, what="/healthz answering again")

    assert _recall(kobot, "kobot:test:kept") == b"kept"
    assert "died" in kobot.log("serve.log")
    assert serve.poll() is None


def test_a_job_running_when_the_store_dies_ends_in_one_final_state_that_the_chat_shows(
    kobot: KobotProcesses,
) -> None:
    serve = kobot.start("serve", log_name="serve.log")
    wait_for(kobot.healthy, timeout=30, what="kobot serve answering")
    kobot.mention("test slow demo seconds=4")
    store = Redis.from_url(f"unix://{kobot.embedded_socket}")
    try:
        wait_for(task_started(store, "1", "Sleep"), timeout=60, what="the job's Sleep task running")
        [valkey] = _valkey_pids(kobot)
        os.kill(valkey, signal.SIGKILL)
        jobs = JobStore(store)

        def ended() -> JobState | None:
            try:
                record = jobs.get("1")
            except RedisError:
                return None
            return record.state if record is not None and record.state.finished else None

        final = wait_for(ended, timeout=60, what=f"the job's final state\n{kobot.log('serve.log')[-3000:]}")
        shown = {JobState.SUCCEEDED: "succeeded", JobState.FAILED: "failed", JobState.CANCELLED: "cancelled"}
        wait_for(lambda: kobot.said(shown[final]), timeout=30, what=f"the chat showing the job {final.value}")
        wait_for(
            lambda: not store.exists(keys.cluster_holder("demo")), timeout=10, what="the cluster released"
        )
    finally:
        store.close()
    assert serve.poll() is None
