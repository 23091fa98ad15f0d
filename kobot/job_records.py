"""Typed job contract: the spec a dispatcher queues, the record a worker keeps, the events it publishes.

Everything here is JSON (RQ runs with its JSON serializer; nothing is pickled).
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import ConfigDict, Field

from kobot.clock import utcnow
from kobot.conversations import Conversation, Identity, MessageRef
from kobot.deferred_models import DeferredModel


class JobKind(str, Enum):
    """One operation per kind; each kind has an ordered list of named steps (workers.operations)."""

    CLUSTER_CREATE = "cluster.create"
    CLUSTER_DELETE = "cluster.delete"
    WORKERS_SCALE = "workers.scale"
    NODE_ADD = "node.add"
    NODE_REMOVE = "node.remove"
    NODE_REPLACE = "node.replace"
    CLUSTER_UPGRADE = "cluster.upgrade"
    ETCD_BACKUP = "etcd.backup"
    ETCD_RESTORE = "etcd.restore"
    CERTS_RENEW = "certs.renew"
    CIS_SCAN = "cis.scan"


MUTATING_KINDS = frozenset(JobKind)
"""Every job kind changes its cluster, so at most one runs per cluster at a time."""


class JobState(str, Enum):
    WAITING = "waiting"
    """Another mutating job holds the cluster; this one starts when it ends."""
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class StepState(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobSpec(DeferredModel):
    """What to run, for whom, and where to report. Immutable once queued."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    kind: str
    """A `JobKind` value, or a kind a plugin registered (see workers.operations)."""
    cluster: str
    params: dict[str, Any] = Field(default_factory=dict)
    requested_by: Identity
    reply_to: Conversation
    command_text: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class StepRecord(DeferredModel):
    """One named step's persisted state; `retry job N` resumes at the first step not succeeded."""

    name: str
    title: str
    state: StepState = StepState.PENDING
    started_at: datetime | None = None
    finished_at: datetime | None = None
    changed: int = 0
    failed: int = 0
    task: str | None = None
    host: str | None = None
    error: str | None = None


class JobRecord(DeferredModel):
    """kobot's own view of a job; RQ's job is only the vehicle of one attempt."""

    spec: JobSpec
    state: JobState = JobState.QUEUED
    steps: list[StepRecord] = Field(default_factory=list)
    attempt: int = 1
    waiting_for: str | None = None
    current_task: str | None = None
    message_ref: MessageRef | None = None
    summary: str | None = None
    error: str | None = None
    failed_task: str | None = None
    failed_host: str | None = None
    worker: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def job_id(self) -> str:
        return self.spec.job_id

    def changed_total(self) -> int:
        return sum(step.changed for step in self.steps)

    def failed_total(self) -> int:
        return sum(step.failed for step in self.steps)

    def current_step_index(self) -> int:
        """0-based index of the step running now, or of the next one to run."""
        for index, step in enumerate(self.steps):
            if step.state is not StepState.SUCCEEDED:
                return index
        return max(len(self.steps) - 1, 0)


class JobEventType(str, Enum):
    JOB_QUEUED = "job_queued"
    JOB_WAITING = "job_waiting"
    JOB_STARTED = "job_started"
    STEP_STARTED = "step_started"
    TASK_STARTED = "task_started"
    TASK_OK = "task_ok"
    TASK_CHANGED = "task_changed"
    TASK_FAILED = "task_failed"
    TASK_SKIPPED = "task_skipped"
    HOST_UNREACHABLE = "host_unreachable"
    LOG = "log"
    STEP_SUCCEEDED = "step_succeeded"
    STEP_FAILED = "step_failed"
    JOB_SUCCEEDED = "job_succeeded"
    JOB_FAILED = "job_failed"
    JOB_CANCELLED = "job_cancelled"

    @property
    def final(self) -> bool:
        return self in (JobEventType.JOB_SUCCEEDED, JobEventType.JOB_FAILED, JobEventType.JOB_CANCELLED)


class JobEvent(DeferredModel):
    """One thing that happened in a job. Secrets are masked before an event is built."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    type: JobEventType
    step: str | None = None
    task: str | None = None
    host: str | None = None
    message: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    at: datetime = Field(default_factory=utcnow)
