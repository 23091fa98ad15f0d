"""The RQ job function: run one attempt of a kobot job, step by step, persisting every step's state."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from typing import Any

from redis.exceptions import RedisError

from kobot.clock import utcnow
from kobot.errors import JobCancelledError, KobotError, StepFailedError
from kobot.job_records import JobEvent, JobEventType, JobRecord, JobState, StepRecord, StepState
from workers import environment
from workers.attempt_keys import remove_attempt_key
from workers.context import StepContext
from workers.operations import Operation, load_operations, operation_for
from workers.service import JobService

log = logging.getLogger(__name__)


def run_job(job_id: str) -> dict[str, Any]:
    """Entry point RQ calls (JSON-serialized argument: the kobot job id)."""
    env = environment.current()
    load_operations(env.settings.plugins)
    runner = JobRunner(service=JobService(redis=env.redis, queue_name=env.settings.queue_name), env=env)
    return runner.run(job_id)


class JobRunner:
    """Runs the steps of one job attempt; a step's state is saved before and after it runs."""

    def __init__(self, *, service: JobService, env: environment.WorkerEnvironment) -> None:
        self.service = service
        self.env = env
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"

    def run(self, job_id: str) -> dict[str, Any]:
        record = self.service.records.require(job_id)
        if record.state is not JobState.QUEUED:
            log.info("job %s is %s, not queued: nothing to run", job_id, record.state.value)
            return {"job_id": job_id, "state": record.state.value}
        op = operation_for(record.spec)
        lease = _LeaseKeeper(self.service, job_id, self.worker_name, self.env.settings.job_lease_seconds)
        lease.start()
        try:
            record.state = JobState.RUNNING
            record.worker = self.worker_name
            record.started_at = record.started_at or utcnow()
            self._save(record)
            self.service.events.publish(
                JobEvent(job_id=job_id, type=JobEventType.JOB_STARTED, data={"attempt": record.attempt})
            )
            state, summary, error = self._run_steps(record, op, lease.lost)
        except _JobLost:
            log.error("job %s ended elsewhere while this worker ran it; its record stays as it is", job_id)
            return {"job_id": job_id, "state": "lost"}
        finally:
            lease.stop()
            # an imported cluster's SSH key is on disk for the attempt only
            remove_attempt_key(self.env.settings.job_artifacts_dir() / job_id)
        self.service.finish(record, state=state, summary=summary, error=error)
        return {"job_id": job_id, "state": state.value, "summary": summary}

    def _run_steps(
        self, record: JobRecord, op: Operation, lease_lost: threading.Event
    ) -> tuple[JobState, str, str | None]:
        steps_by_name = {step.name: step for step in op.steps}
        scratch: dict[str, Any] = {}
        ctx: StepContext | None = None
        for index, step_record in enumerate(record.steps, start=1):
            if step_record.state is StepState.SUCCEEDED:
                continue
            step = steps_by_name.get(step_record.name)
            ctx = self._context(record, step_record, scratch, lease_lost)
            if step is None:
                return self._fail(ctx, f"step {step_record.name} no longer exists in this kobot version")
            step_record.state = StepState.RUNNING
            step_record.started_at = utcnow()
            step_record.finished_at = None
            self._save(record)
            ctx.emit(
                JobEventType.STEP_STARTED,
                message=step.title,
                data={"index": index, "total": len(record.steps)},
            )
            try:
                ctx.check_cancel()
                step.run(ctx)
                ctx.check_cancel()
            except JobCancelledError:
                step_record.state = StepState.CANCELLED
                step_record.finished_at = utcnow()
                self._save(record)
                return (
                    JobState.CANCELLED,
                    f"cancelled during step {index}/{len(record.steps)} {step.title}",
                    None,
                )
            except StepFailedError as exc:
                step_record.task = exc.task or step_record.task
                step_record.host = exc.host or step_record.host
                return self._fail(ctx, exc.user_message, error=exc.error, task=exc.task, host=exc.host)
            except KobotError as exc:
                return self._fail(ctx, exc.user_message, error=exc.user_message)
            except Exception as exc:
                # The exception's text may quote a secret (a command line, a config): it goes to the log
                # only; chat and the job record get its type and where to look.
                log.error("job %s step %s crashed:\n%s", record.job_id, step.name, traceback.format_exc())
                return self._fail(
                    ctx,
                    f"{step.title} crashed",
                    error=f"{type(exc).__name__} in step {step.name}; "
                    f"the worker log has the details under job {record.job_id}",
                )
            step_record.state = StepState.SUCCEEDED
            step_record.finished_at = utcnow()
            self._save(record)
            ctx.emit(JobEventType.STEP_SUCCEEDED, message=step.title)
        if op.on_success is not None:
            # Also when a retry found every step already done (the worker died after the last one).
            last = record.steps[-1] if record.steps else StepRecord(name="done", title="Done")
            hook_ctx = ctx or self._context(record, last, scratch, lease_lost)
            try:
                op.on_success(hook_ctx)
            except Exception:
                log.error("job %s: recording its success failed:\n%s", record.job_id, traceback.format_exc())
                return (
                    JobState.FAILED,
                    "every step succeeded, but recording the result failed",
                    f"see the worker log under job {record.job_id}; retry job {record.job_id} records it",
                )
        summary = "all steps succeeded"
        if op.final_note:
            summary = f"{summary}; {op.final_note}"
        if op.final_note_from is not None:
            last = record.steps[-1] if record.steps else StepRecord(name="done", title="Done")
            found = op.final_note_from(ctx or self._context(record, last, scratch, lease_lost))
            summary = f"{summary}; {found}" if found else summary
        return JobState.SUCCEEDED, summary, None

    def _context(
        self,
        record: JobRecord,
        step: StepRecord,
        scratch: dict[str, Any],
        lease_lost: threading.Event,
    ) -> StepContext:
        """The context every step and record hook of this attempt runs with (one `scratch` per attempt)."""
        return StepContext(
            record=record,
            step=step,
            settings=self.env.settings,
            redis=self.env.redis,
            jobs=self.service.records,
            events=self.service.events,
            scratch=scratch,
            lease_lost=lease_lost,
        )

    def _save(self, record: JobRecord) -> None:
        if not self.service.records.save_unless_ended(record):
            raise _JobLost(record.job_id)

    def _fail(
        self,
        ctx: StepContext,
        message: str,
        *,
        error: str | None = None,
        task: str | None = None,
        host: str | None = None,
    ) -> tuple[JobState, str, str | None]:
        record, step_record = ctx.record, ctx.step
        step_record.state = StepState.FAILED
        step_record.finished_at = utcnow()
        step_record.error = error or message
        record.failed_task = task or step_record.task
        record.failed_host = host or step_record.host
        self._save(record)
        ctx.emit(JobEventType.STEP_FAILED, message=message, task=record.failed_task, host=record.failed_host)
        op = operation_for(record.spec)
        if op.on_failure is not None:
            try:
                op.on_failure(ctx)
            except Exception:
                log.exception("job %s: on_failure hook failed", record.job_id)
        return JobState.FAILED, message, error or message


class _JobLost(Exception):
    """The job's record ended elsewhere (sweep, cancel) while this worker still ran it."""


class _LeaseKeeper:
    """Keeps the job's lease alive while it runs; a lapsed lease tells the sweep the worker died."""

    def __init__(self, service: JobService, job_id: str, worker: str, seconds: float) -> None:
        self._service = service
        self._job_id = job_id
        self._worker = worker
        self._seconds = seconds
        self._stop = threading.Event()
        self.lost = threading.Event()
        """Set when this worker no longer holds the job; steps see it as a cancel."""
        self._thread = threading.Thread(target=self._loop, name=f"lease-{job_id}", daemon=True)

    def start(self) -> None:
        self._service.records.renew_lease(self._job_id, worker=self._worker, seconds=self._seconds)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._seconds)

    def _loop(self) -> None:
        renewed = time.monotonic()
        while not self._stop.wait(self._seconds / 3):
            try:
                self._service.records.renew_lease(self._job_id, worker=self._worker, seconds=self._seconds)
                renewed = time.monotonic()
                stored = self._service.records.get(self._job_id)
                if stored is not None and stored.state.finished:
                    self._give_up("the job was ended elsewhere (the recovery sweep or a cancel)")
            except RedisError as exc:
                log.warning("job %s: could not renew its lease (store: %s)", self._job_id, exc)
            except Exception:
                log.warning("job %s: could not renew its lease", self._job_id, exc_info=True)
                if time.monotonic() - renewed > self._seconds:
                    self._give_up("its lease lapsed: the worker could not reach the store")

    def _give_up(self, why: str) -> None:
        # Past this point the sweep may already have released the cluster to another job: the steps
        # stop at their next cancel check rather than keep changing a cluster they no longer hold.
        if not self.lost.is_set():
            log.error("job %s stops: %s", self._job_id, why)
            self.lost.set()
