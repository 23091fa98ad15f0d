"""A Day 2 job's progress in its work dir (which nodes join, leave, are drained or upgraded, which
backup), so a retry in a new process resumes where the last attempt stopped; and its log lines."""

from __future__ import annotations

from pydantic import Field

from kobot.clusters import NodeRecord
from kobot.deferred_models import DeferredModel
from kobot.job_records import JobEventType
from workers.context import StepContext

STATE_FILE = "day2.json"
"""Per-job progress file in the job's work dir (node names only: nothing secret)."""


class Day2State(DeferredModel):
    add: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)
    drained: list[str] = Field(default_factory=list)
    upgraded: list[str] = Field(default_factory=list)
    backup_id: str | None = None
    successors: list[NodeRecord] = Field(default_factory=list)
    """A replaced master's successors: they enter the record (and join) only once it has left etcd."""


def load_state(ctx: StepContext) -> Day2State:
    path = ctx.work_dir / STATE_FILE
    return Day2State.model_validate_json(path.read_text()) if path.exists() else Day2State()


def save_state(ctx: StepContext, state: Day2State) -> None:
    path = ctx.work_dir / STATE_FILE
    partial = path.with_suffix(".part")
    partial.write_text(state.model_dump_json())
    partial.replace(path)


def say(ctx: StepContext, message: str) -> None:
    ctx.emit(JobEventType.LOG, message=message)
