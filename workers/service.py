"""Submitting, cancelling, retrying and finishing jobs: the one place that moves a job between states.

The dispatcher submits; the job runner finishes; the recovery sweep fails jobs of dead workers. All
of them go through here so the cluster lock and the event stream always agree with the record.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import TYPE_CHECKING, Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError

from kobot import defaults, keys
from kobot.audit import AuditAction, AuditLog
from kobot.clock import utcnow
from kobot.conversations import Conversation, Identity
from kobot.errors import ConflictError, NotFoundError
from kobot.job_records import JobEvent, JobEventType, JobRecord, JobSpec, JobState, StepState
from kobot.store import synced
from workers.events import EventPublisher
from workers.job_store import JobStore
from workers.locks import ClusterLocks
from workers.operations import initial_steps, operation_for

if TYPE_CHECKING:
    from rq import Queue

log = logging.getLogger(__name__)


RUN_JOB = "workers.jobs.run_job"
"""The job function, queued by its dotted path: RQ imports it in the worker, and this module (which the
job function itself uses) never imports the job function back."""


def job_queue(redis: Redis, name: str) -> Queue:
    """The RQ queue `name` of kobot's jobs (JSON arguments) on `redis`. RQ is imported here, by the first
    part of a process that queues, sweeps or runs a job: `kobot serve` answers before any does (RQ's
    import was about 3 % of its start's instructions)."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    return Queue(name, connection=redis, serializer=JSONSerializer)


class JobService:
    """Moves jobs between states; owns the cluster lock and the RQ queue."""

    def __init__(self, *, redis: Redis, queue_name: str) -> None:
        self.redis = redis
        self.queue_name = queue_name
        self.records = JobStore(redis)
        """The job records, their progress message refs, cancel flags and leases."""
        self.locks = ClusterLocks(redis)
        self.events = EventPublisher(redis)

    @cached_property
    def queue(self) -> Queue:
        """The RQ queue jobs are put on, made by its first use."""
        return job_queue(self.redis, self.queue_name)

    def new_spec(
        self,
        *,
        kind: str,
        cluster: str,
        params: dict[str, Any],
        requested_by: Identity,
        reply_to: Conversation,
        command_text: str = "",
        job_id: str | None = None,
    ) -> JobSpec:
        """A new job's spec; `job_id` when the caller reserved one (an approved request's job)."""
        return JobSpec(
            job_id=job_id or self.records.next_id(),
            kind=kind,
            cluster=cluster,
            params=params,
            requested_by=requested_by,
            reply_to=reply_to,
            command_text=command_text,
        )

    def submit(self, spec: JobSpec) -> JobRecord:
        """Record the job and queue it, or make it wait for the job holding its cluster."""
        record = JobRecord(spec=spec, steps=initial_steps(operation_for(spec)))
        self.admit(record)
        return record

    def retry(self, job_id: str) -> JobRecord:
        """Queue a failed or cancelled job again; it resumes at its first step that did not succeed.

        Check and claim are one compare-and-set: of two retries at once, one moves the job out of its
        ended state (to waiting, then admitted) and the other finds it no longer ended and is refused.
        A claim whose admission never happened (a crash in between) is admitted by the recovery sweep.
        """
        key = keys.job(job_id)
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    stored: bytes | None = synced(pipe.get(key))
                    if stored is None:
                        raise NotFoundError(f"there is no job {job_id}")
                    record = JobRecord.model_validate_json(stored)
                    if record.state not in (JobState.FAILED, JobState.CANCELLED):
                        raise ConflictError(
                            f"job {job_id} is {record.state.value}; "
                            "only failed or cancelled jobs can be retried"
                        )
                    _reset_for_retry(record)
                    pipe.multi()
                    self.records.queue_save(pipe, record)
                    pipe.delete(keys.job_cancel(job_id))
                    pipe.execute()
                    break
                except WatchError:
                    continue
        self.admit(record)
        return record

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel: a waiting or queued job ends now; a running one is asked to stop at its next check."""
        record = self.records.require(job_id)
        if record.state.finished:
            raise ConflictError(f"job {job_id} already {record.state.value}")
        self.records.request_cancel(job_id)
        if record.state in (JobState.WAITING, JobState.QUEUED):
            self.finish(record, state=JobState.CANCELLED, summary="cancelled before it started")
        return record

    def finish(
        self,
        record: JobRecord,
        *,
        state: JobState,
        summary: str,
        error: str | None = None,
    ) -> bool:
        """Record the final state, announce it, release the cluster and start whoever waited for it.

        Compare-and-set: a job that already ended (the sweep failed it, a cancel ended it) is left as it
        is and False is returned. The final state, its event and its audit entry (job.outcome) are written in
        one transaction, so neither the chat nor the audit trail misses the end of a job whose record says
        it ended, and each outcome is audited exactly once.
        """
        key = keys.job(record.job_id)
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    stored: bytes | None = synced(pipe.get(key))
                    if stored is not None and JobRecord.model_validate_json(stored).state.finished:
                        pipe.unwatch()
                        log.warning("job %s had already ended; %s not recorded", record.job_id, state.value)
                        return False
                    pipe.multi()
                    self._queue_final(pipe, record, state=state, summary=summary, error=error)
                    pipe.execute()
                    break
                except WatchError:
                    continue
        self.records.drop_lease(record.job_id)
        self.release_cluster(cluster=record.spec.cluster, job_id=record.job_id)
        return True

    def _queue_final(
        self, pipe: Pipeline, record: JobRecord, *, state: JobState, summary: str, error: str | None
    ) -> None:
        record.state = state
        record.summary = summary
        if error is not None:
            record.error = error
        record.finished_at = utcnow()
        record.current_task = None
        for step in record.steps:
            if step.state is StepState.RUNNING:
                step.state = StepState.CANCELLED if state is JobState.CANCELLED else StepState.FAILED
        self.records.queue_save(pipe, record)
        event_type = {
            JobState.SUCCEEDED: JobEventType.JOB_SUCCEEDED,
            JobState.FAILED: JobEventType.JOB_FAILED,
            JobState.CANCELLED: JobEventType.JOB_CANCELLED,
        }[state]
        self.events.queue_publish(pipe, JobEvent(job_id=record.job_id, type=event_type, message=summary))
        AuditLog.queue_record(
            pipe,
            who=record.spec.requested_by,
            where=record.spec.reply_to,
            action=AuditAction.JOB_OUTCOME,
            cluster=record.spec.cluster,
            detail={
                "job": record.job_id,
                "kind": record.spec.kind,
                "attempt": record.attempt,
                "command": record.spec.command_text,
                "summary": summary,
                **({"error": error} if error is not None else {}),
            },
            result=state.value,
        )

    def admit(self, record: JobRecord) -> None:
        acquired = self.locks.acquire(cluster=record.spec.cluster, job_id=record.job_id)
        if acquired.granted:
            self.enqueue(record)
        else:
            record.state = JobState.WAITING
            record.waiting_for = acquired.holder
            self.records.save(record)
            self.events.publish(
                JobEvent(
                    job_id=record.job_id,
                    type=JobEventType.JOB_WAITING,
                    message=f"waits for job {acquired.holder} on cluster {record.spec.cluster}",
                    data={"waiting_for": acquired.holder},
                )
            )

    def enqueue(self, record: JobRecord) -> None:
        record.state = JobState.QUEUED
        record.waiting_for = None
        self.records.save(record)
        self.events.publish(JobEvent(job_id=record.job_id, type=JobEventType.JOB_QUEUED))
        self.queue.enqueue(
            RUN_JOB,
            record.job_id,
            job_id=keys.rq_job_id(record.job_id, record.attempt),
            job_timeout=defaults.JOB_TIMEOUT_SECONDS,
            result_ttl=defaults.JOB_RESULT_TTL_SECONDS,
            failure_ttl=defaults.JOB_RESULT_TTL_SECONDS,
            description=f"{record.spec.kind} {record.spec.cluster} (job {record.job_id})",
        )

    def release_cluster(self, *, cluster: str, job_id: str) -> None:
        """Let go of the cluster and queue the job that waited longest for it."""
        next_id = self.locks.release(cluster=cluster, job_id=job_id)
        while next_id is not None:
            waiting = self.records.get(next_id)
            if waiting is not None and waiting.state is JobState.WAITING:
                self.enqueue(waiting)
                return
            # A waiting job that vanished or was cancelled must not keep the cluster.
            next_id = self.locks.release(cluster=cluster, job_id=next_id)


def _reset_for_retry(record: JobRecord) -> None:
    """The next attempt: its outcome cleared, steps that did not succeed pending again, and waiting
    (not ended) from the moment it is claimed."""
    record.attempt += 1
    record.state = JobState.WAITING
    record.waiting_for = None
    record.error = record.failed_task = record.failed_host = record.summary = None
    record.finished_at = None
    record.current_task = None
    for step in record.steps:
        if step.state is not StepState.SUCCEEDED:
            step.state = StepState.PENDING
            step.error = step.task = step.host = None
            step.failed = 0
