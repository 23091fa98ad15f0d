"""kobot's RQ workers: the forking one of `kobot worker` and the one that lives in a thread of `kobot
chat`/`serve`. Apart from `workers.worker`, which runs them, so RQ is imported when a worker starts, not
when a process that will run one is set up (`kobot serve` starts its worker once it answers)."""

from __future__ import annotations

import logging
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import SimpleWorker, Worker
from rq.exceptions import StopRequested
from rq.timeouts import TimerDeathPenalty

from kobot import keys
from workers.job_store import JobStore

log = logging.getLogger(__name__)

IN_PROCESS_RECONNECT_MAX_SECONDS = 2.0
"""Longest pause between two attempts of the in-process worker to reach a lost store (RQ's default of a
minute would also be how long a stop request waits)."""


def cancel_running_job(worker: Worker | SimpleWorker, redis: Redis) -> None:
    """Ask the job a stopping worker runs to stop at its next check (a step boundary, or Ansible's and
    Terraform's own cancel): it ends cancelled, in chat too, and `retry` resumes it."""
    try:
        running = worker.get_current_job_id()
        job_id = keys.job_id_of_rq(running) if running else None
        if job_id is not None:
            log.warning("stopping: cancelling running job %s (retry resumes it)", job_id)
            JobStore(redis).request_cancel(job_id)
    except RedisError:
        # the store is down: the job's lease keeper sees it too and stops the steps within a lease
        log.warning("stopping: the store does not answer; the running job stops when its lease lapses")


class CancellingWorker(Worker):
    """`kobot worker`'s forking RQ worker. RQ's warm shutdown (SIGTERM: `docker stop`, systemd) waits for
    the whole job, which outlives any stop grace; this one also cancels the running job, so the grace only
    has to cover reaching the next cancel check (compose's stop_grace_period is sized for that)."""

    stop_was_requested = False
    """Set by SIGTERM/SIGINT. RQ marks its own `_stop_requested` only when a job is running (an idle
    worker's loop just ends), so `run_forking_worker` asks this to tell a stop from a lost store."""

    def handle_warm_shutdown_request(self) -> None:
        self.stop_was_requested = True
        super().handle_warm_shutdown_request()  # type: ignore[no-untyped-call]
        cancel_running_job(self, self.connection)


class ThreadWorker(SimpleWorker):
    """A SimpleWorker that can live in a thread: signals belong to the main thread's owner, so job
    timeouts use a timer instead of SIGALRM."""

    death_penalty_class = TimerDeathPenalty
    max_connection_wait_time = IN_PROCESS_RECONNECT_MAX_SECONDS
    _dequeuing = False

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        # RQ's own loop waits for a job forever; come up for air every second to see a stop request.
        if timeout is None:  # burst mode: RQ returns at once when the queue is empty
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        self._dequeuing = True
        try:
            while not self._stop_requested:
                result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time=1)
                if result is not None:
                    return result
        finally:
            self._dequeuing = False
        raise StopRequested()

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        # RQ retries a lost store inside its dequeue loop forever, calling this before each try: a stop
        # request ends the wait here, so stopping does not hang while the store is down.
        if self._dequeuing and self._stop_requested:
            raise StopRequested()
        super().heartbeat(timeout, pipeline)

    def _install_signal_handlers(self) -> None:
        return None
