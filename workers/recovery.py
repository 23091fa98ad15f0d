"""Finding work a dead worker left behind: running jobs whose lease lapsed, queued jobs RQ lost.

Runs when a worker starts and every few seconds after, in workers and in `kobot serve`. Each such
job is marked failed (with the step it died in), its cluster released, and its chat told through
the event stream; `retry job N` then resumes at that step.
"""

from __future__ import annotations

import logging

from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from kobot import keys
from kobot.clock import utcnow
from kobot.job_records import JobRecord, JobState, StepState
from workers.service import JobService

log = logging.getLogger(__name__)

_RQ_DEAD = {JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}

QUEUED_GRACE_SECONDS = 10.0
"""A queued job younger than this is not judged: its RQ entry is written just after the record."""


def sweep(service: JobService) -> list[str]:
    """Fail every job left in flight by a dead worker; returns their ids."""
    failed: list[str] = []
    for record in list(service.records.active()):
        if record.state is JobState.WAITING:
            _unstick_waiting(service, record)
            continue
        reason = _abandoned_reason(service, record)
        if reason is None:
            continue
        log.warning("job %s: %s; marking it failed", record.job_id, reason)
        service.finish(record, state=JobState.FAILED, summary=reason, error=reason)
        failed.append(record.job_id)
    _release_orphaned_holders(service)
    return failed


def _abandoned_reason(service: JobService, record: JobRecord) -> str | None:
    if record.state is JobState.RUNNING:
        if service.records.lease_alive(record.job_id):
            return None
        step = next((s for s in record.steps if s.state is StepState.RUNNING), None)
        where = f" during step {step.title}" if step else ""
        return f"the worker running it stopped{where}; retry job {record.job_id} resumes there"
    if record.state is JobState.QUEUED:
        if (utcnow() - record.updated_at).total_seconds() < QUEUED_GRACE_SECONDS:
            return None  # just queued: RQ's entry may be a moment behind the record
        status = _rq_status(service, record)
        if status is None:
            return f"its queue entry was lost; retry job {record.job_id} queues it again"
        if status in _RQ_DEAD:
            return f"the worker dropped it ({status.value}); retry job {record.job_id} queues it again"
    return None


def _unstick_waiting(service: JobService, record: JobRecord) -> None:
    """A waiting job must be either in its cluster's queue or about to run; a crash between the lock
    and the record (or during a promotion) can leave it neither, which would block it forever."""
    cluster = record.spec.cluster
    if (utcnow() - record.updated_at).total_seconds() < QUEUED_GRACE_SECONDS:
        return  # a promotion may be under way right now
    if service.locks.holder(cluster) == record.job_id:
        log.warning("job %s holds cluster %s but was never queued; queueing it", record.job_id, cluster)
        service.enqueue(record)
    elif record.job_id not in service.locks.waiting(cluster):
        log.warning(
            "job %s was waiting outside the queue of cluster %s; admitting it again", record.job_id, cluster
        )
        service.admit(record)


def _rq_status(service: JobService, record: JobRecord) -> JobStatus | None:
    try:
        job = Job.fetch(
            keys.rq_job_id(record.job_id, record.attempt),
            connection=service.redis,
            serializer=service.queue.serializer,
        )
    except NoSuchJobError:
        return None
    status = job.get_status(refresh=False)
    return JobStatus(status) if status is not None else None


def _release_orphaned_holders(service: JobService) -> None:
    """A cluster held by a job that already ended (a crash between two writes) is released."""
    for raw in service.redis.scan_iter(match=keys.cluster_holder("*"), count=200):
        cluster = keys.cluster_from_holder_key(raw.decode())
        holder = service.locks.holder(cluster)
        if holder is None:
            continue
        record = service.records.get(holder)
        if record is None or record.state.finished:
            log.warning("cluster %s was still held by finished job %s; releasing it", cluster, holder)
            service.release_cluster(cluster=cluster, job_id=holder)
