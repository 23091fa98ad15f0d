"""Running jobs: a real forking RQ worker (`kobot worker`) or one in a thread of `kobot chat`/`serve`.

Both configure the job environment, register operations, sweep what dead workers left, and keep
sweeping every few seconds while they run.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING

from redis import Redis
from redis.exceptions import RedisError

from kobot import defaults
from kobot.backoff import capped_backoff
from kobot.deferred_models import build_deferred_models
from kobot.redis_clients import sync_client
from kobot.settings import Settings
from workers import environment
from workers.attempt_keys import remove_abandoned_attempt_keys
from workers.operations import load_operations
from workers.service import JobService, job_queue

if TYPE_CHECKING:
    from rq import Queue, Worker

    from workers.rq_workers import ThreadWorker

log = logging.getLogger(__name__)

STOP_WAIT_SECONDS = 30.0
"""How long stopping waits for a cancelled job to reach its next cancel check and end."""

SWEEP_STOP_WAIT_SECONDS = 5.0
"""How long stopping the sweep waits for a round under way (a round on a slow store runs on after it, and
closes its connection when it ends)."""

IN_PROCESS_WORKER_TTL = 16
"""RQ blocks on the queue for this minus 15 seconds, so a stop request is seen within a second."""

STORE_RECONNECT_FIRST_SECONDS = 0.5
"""First pause of `kobot worker` before asking a lost store again; it doubles per failed try."""

STORE_RECONNECT_MAX_SECONDS = 10.0
"""Longest pause of `kobot worker` between two tries at a lost store: a store back after an outage is
taking jobs again within this."""

STOP_LISTENING_SECONDS = 2.0
"""Longest wait for a worker loop's pub/sub thread to end after the store was lost under it."""

WORKER_RESTART_PAUSE_SECONDS = 1.0
"""Pause before `kobot worker` starts a new RQ worker loop after one ended on an error, so an error that
repeats at once costs a log line a second, not a busy loop."""

RQ_WORKER_LOGGER = "rq.worker"
"""The logger RQ's worker loop reports through."""


def _prepare(settings: Settings, redis: Redis, *, operations: bool = True) -> Queue:
    """`operations`: register every operation now (a forking worker's jobs then inherit them); a job
    registers what it runs itself (`run_job`), so a worker inside `kobot serve` leaves that for later."""
    environment.configure(settings=settings, redis=redis)
    if operations:
        load_operations(settings.plugins)
    return job_queue(redis, settings.queue_name)


class Sweeper:
    """Runs the recovery sweep now and then every lease period, on its own connection."""

    def __init__(self, *, settings: Settings, redis_url: str) -> None:
        self._settings = settings
        # Bounded, as RQ bounds its workers' connections: a store that takes connections and stops
        # answering (stopped by SIGSTOP, cut off by the network) held the sweep's thread for ever, and
        # with it every later round; now the round fails and the next one tries again.
        self._redis = sync_client(
            redis_url,
            timeout=defaults.REDIS_SOCKET_TIMEOUT_SECONDS,
            connect_timeout=defaults.REDIS_SOCKET_TIMEOUT_SECONDS,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kobot-sweeper", daemon=True)

    def sweep_once(self) -> list[str]:
        from workers.recovery import sweep  # with RQ's job records: on the sweep's thread, at its start

        service = JobService(redis=self._redis, queue_name=self._settings.queue_name)
        failed = sweep(service)
        for job_id in remove_abandoned_attempt_keys(
            self._settings.job_artifacts_dir(), lease_alive=service.records.lease_alive
        ):
            log.warning("job %s: removed the SSH key copy its dead worker left on disk", job_id)
        return failed

    def start(self) -> None:
        """Sweep once, then every half lease. A store that does not answer raises (the caller tries the
        start again); any other failure of the first sweep is logged and left to the next round, as the
        rounds' failures are, so it never keeps the sweep (or a worker behind it) from starting. A sweeper
        already stopped does nothing."""
        if self._stop.is_set():
            return
        try:
            self.sweep_once()
        except RedisError:
            raise
        except Exception:
            log.warning("recovery sweep failed; trying again shortly", exc_info=True)
        finally:
            if self._stop.is_set():
                # stopped during that sweep, whose next command reopened the connection the stop closed
                self._redis.close()
        if self._stop.is_set():
            return
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=SWEEP_STOP_WAIT_SECONDS)
        self._redis.close()

    def _loop(self) -> None:
        while not self._stop.wait(self._settings.job_lease_seconds / 2):
            try:
                self.sweep_once()
            except RedisError as exc:
                log.warning("recovery sweep failed (store: %s); trying again shortly", exc)
            except Exception:
                log.warning("recovery sweep failed; trying again shortly", exc_info=True)
        # a round can outlive the stop's wait for it (a slow store), and its next command reopened the
        # connection the stop closed
        self._redis.close()


class _StoreLossSaidOnce(logging.Filter):
    """RQ logs its own traceback when the store goes away under its loop ("found an unhandled exception,
    quitting"); this process says it in one line and rides the outage out, so RQ's copy is dropped. Any
    other exception RQ reports still reaches the log whole."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, RedisError) and "unhandled exception" in str(record.msg))


def run_forking_worker(*, settings: Settings, redis_url: str, burst: bool = False) -> None:
    """`kobot worker`: a real RQ worker that forks a horse per job.

    RQ's loop ends when the store goes away mid-job (and its teardown then raises); this process does
    not: it says so in one line, waits for the store with a capped backoff, and starts a new RQ worker
    loop. The job that was running is ended by its lease (failed, resumable) through the sweep. Only a
    stop request (SIGTERM, SIGINT) or a finished burst ends it."""
    from workers.rq_workers import CancellingWorker

    redis = sync_client(redis_url)
    queue = _prepare(settings, redis)
    # once, here: every job's horse is forked from this process and inherits them built
    build_deferred_models()
    sweeper = Sweeper(settings=settings, redis_url=redis_url)
    sweeper.start()
    store_loss_filter = _StoreLossSaidOnce()
    rq_log = logging.getLogger(RQ_WORKER_LOGGER)
    rq_log.addFilter(store_loss_filter)
    try:
        while True:
            worker = CancellingWorker([queue], connection=redis, serializer=queue.serializer)
            try:
                worker.work(burst=burst, logging_level=settings.log_level)
            except RedisError as exc:
                lost: str | None = f"{type(exc).__name__}: {exc}"
                _stop_listening(worker)
            else:
                lost = None
            if burst or worker.stop_was_requested:
                return
            if lost is None:
                lost = "RQ's worker loop ended without a stop request"
            if not _wait_for_store(redis, reason=lost, location=_location(redis)):
                return
    finally:
        rq_log.removeFilter(store_loss_filter)
        sweeper.stop()


def _stop_listening(worker: Worker) -> None:
    """RQ's teardown stops the worker's pub/sub thread only after recording its death, which fails while
    the store is down; left running, that thread would try the store for ever, one more per outage."""
    thread = getattr(worker, "pubsub_thread", None)
    if thread is not None:
        thread.stop()
        thread.join(timeout=STOP_LISTENING_SECONDS)


def _location(redis: Redis) -> str:
    """Where the store is, for a log line: host and port or socket path, never a password."""
    options = redis.connection_pool.connection_kwargs
    if "path" in options:
        return str(options["path"])
    return f"{options.get('host', 'localhost')}:{options.get('port', 6379)}"


def _wait_for_store(redis: Redis, *, reason: str, location: str) -> bool:
    """Wait until the store answers (True) or a stop is requested (False), saying so once each way."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stop.set()

    # RQ's handlers belong to the loop that ended; while waiting, a signal only ends the wait
    previous = {number: signal.signal(number, request_stop) for number in (signal.SIGTERM, signal.SIGINT)}
    log.error(
        "kobot worker: lost the store at %s (%s); waiting for it and taking jobs again once it answers",
        location,
        reason,
    )
    started = time.monotonic()
    try:
        stop.wait(WORKER_RESTART_PAUSE_SECONDS)
        attempt = 0
        while not stop.is_set():
            try:
                redis.ping()
            except RedisError:
                attempt += 1
                stop.wait(
                    capped_backoff(
                        attempt=attempt, first=STORE_RECONNECT_FIRST_SECONDS, cap=STORE_RECONNECT_MAX_SECONDS
                    )
                )
                continue
            log.warning(
                "kobot worker: the store at %s answers again after %.0f s; taking jobs",
                location,
                time.monotonic() - started,
            )
            return True
        log.warning("kobot worker: stopping on request while the store was away")
        return False
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class InProcessWorker:
    """Runs jobs in a background thread of this process (the embedded default)."""

    def __init__(self, *, settings: Settings, redis_url: str) -> None:
        self._settings = settings
        self._redis = sync_client(redis_url)
        self._sweeper = Sweeper(settings=settings, redis_url=redis_url)
        self._worker: ThreadWorker | None = None
        """RQ's worker, made by `start` (RQ is imported then: serve starts it once it answers)."""
        self._thread = threading.Thread(target=self._run, name="kobot-worker", daemon=True)
        # serve starts the worker on a thread a moment after it answers, so a stop can come before or
        # during that start: the lock makes the two exclusive, and a stopped worker never starts
        self._lifecycle = threading.Lock()
        self._stopped = False

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def start(self) -> None:
        """Build RQ's worker, sweep once and start the sweep's and the worker's threads. A store error
        raises (the caller tries again): RQ's worker, which asks the store who it is as it is built, comes
        first, so a failed try has started nothing and the next one starts all."""
        if self._stopped:
            return
        try:
            if self._worker is None:
                self._worker = self._new_worker()
        finally:
            stopped = self._close_if_stopped()
        if stopped:
            return
        self._sweeper.start()
        with self._lifecycle:
            if not self._stopped:
                self._thread.start()

    def _close_if_stopped(self) -> bool:
        """Whether a stop came; if so, the connection is closed again: RQ's build of the worker, whose store
        calls reopen it, can outlive the stop that closed it (a start on a hung store outlives the
        supervisor's wait for it)."""
        with self._lifecycle:
            if self._stopped:
                self._redis.close()
            return self._stopped

    def _new_worker(self) -> ThreadWorker:
        from workers.rq_workers import ThreadWorker

        queue = _prepare(self._settings, self._redis, operations=False)
        return ThreadWorker(
            [queue], connection=self._redis, serializer=queue.serializer, worker_ttl=IN_PROCESS_WORKER_TTL
        )

    def stop(self) -> None:
        """Stop taking jobs; a job running now is cancelled (it stops at its next check, resumable with
        `retry`) rather than cut off when the store closes under it."""
        with self._lifecycle:
            self._stopped = True
            started = self.started
        if started and self._worker is not None:
            from workers.rq_workers import cancel_running_job

            self._worker._stop_requested = True
            cancel_running_job(self._worker, self._redis)
            self._thread.join(timeout=STOP_WAIT_SECONDS)
        self._sweeper.stop()
        self._redis.close()

    def _run(self) -> None:
        worker = self._worker
        assert worker is not None  # made before the thread starts
        try:
            worker.work(logging_level="WARNING")
        except RedisError as exc:
            if not worker._stop_requested:
                log.exception("in-process worker stopped")
            else:  # RQ's own teardown needs the store; stopping while it is down ends here
                log.warning("in-process worker stopped without the store: %s", exc)
        except Exception:
            log.exception("in-process worker stopped")
