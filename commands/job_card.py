"""How a job looks in chat: one message, re-rendered from the job record on every edit."""

from __future__ import annotations

from datetime import datetime

from kobot.clock import utcnow
from kobot.job_records import JobRecord, JobState, StepState
from kobot.messages import (
    Button,
    ButtonStyle,
    Field,
    MessageKind,
    OutgoingMessage,
    Progress,
    Tone,
    format_elapsed,
)

ERROR_TEXT_MAX = 1500
"""Longest error excerpt shown in chat; the rest stays in the job's events."""

CANCEL_ACTION = "job.cancel"
"""Action id of the Cancel button on a job's progress message; its value is signed by the bot."""

CANCEL_LABEL = "Cancel"


def job_title(record: JobRecord) -> str:
    """`Job 42 · create cluster prod`: the kind read as the command people type ("cluster.create")."""
    noun, _, verb = record.spec.kind.partition(".")
    phrase = f"{verb} {noun}" if noun in ("cluster", "workers", "node", "etcd") else f"{noun} {verb}".strip()
    rehearsal = "dry run: " if _dry_run(record) else ""
    return f"Job {record.job_id} · {rehearsal}{phrase.replace('_', ' ')} {record.spec.cluster}"


def _dry_run(record: JobRecord) -> bool:
    """A job queued with `dry_run` changes nothing: its title says so, its counts are what would change."""
    return record.spec.params.get("dry_run") is True


def render_job(
    record: JobRecord, *, now: datetime | None = None, cancel_value: str | None = None
) -> OutgoingMessage:
    """The job's message as it stands. With `cancel_value` (a signed payload naming this job), a job
    that has not ended carries a Cancel button; an ended job never does, so the button goes with it."""
    message = _render(record, now=now or utcnow())
    if cancel_value is None or record.state.finished:
        return message
    cancel = Button(
        label=CANCEL_LABEL,
        action_id=CANCEL_ACTION,
        value=cancel_value,
        style=ButtonStyle.DANGER,
        typed=f"cancel job {record.job_id}",
    )
    return message.model_copy(update={"buttons": (cancel,)})


def _render(record: JobRecord, *, now: datetime) -> OutgoingMessage:
    title = job_title(record)
    total = len(record.steps)
    started = record.started_at or record.spec.created_at
    elapsed = ((record.finished_at or now) - started).total_seconds()
    who = record.spec.requested_by.label()
    if record.state is JobState.WAITING:
        return OutgoingMessage(
            kind=MessageKind.PROGRESS,
            title=title,
            tone=Tone.INFO,
            status=f"waiting: job {record.waiting_for} holds cluster {record.spec.cluster}; "
            f"this one starts when it ends (requested by {who})",
        )
    if record.state is JobState.QUEUED:
        first = record.steps[record.current_step_index()] if record.steps else None
        return OutgoingMessage(
            kind=MessageKind.PROGRESS,
            title=title,
            tone=Tone.RUNNING,
            status=f"queued by {who}" + (f" · attempt {record.attempt}" if record.attempt > 1 else ""),
            progress=Progress(step=record.current_step_index() + 1, total=total, step_title=first.title)
            if first
            else None,
        )
    if record.state is JobState.RUNNING:
        index = record.current_step_index()
        step = record.steps[index]
        return OutgoingMessage(
            kind=MessageKind.PROGRESS,
            title=title,
            tone=Tone.RUNNING,
            status="running" + (f" · attempt {record.attempt}" if record.attempt > 1 else ""),
            progress=Progress(
                step=index + 1,
                total=total,
                step_title=step.title,
                task=record.current_task if step.state is StepState.RUNNING else None,
                elapsed_seconds=elapsed,
            ),
        )
    return _render_final(record, title=title, elapsed=elapsed)


def _render_final(record: JobRecord, *, title: str, elapsed: float) -> OutgoingMessage:
    counts = (
        Field(label="Would change" if _dry_run(record) else "Changed", value=str(record.changed_total())),
        Field(label="Failed", value=str(record.failed_total())),
    )
    duration = format_elapsed(elapsed)
    if record.state is JobState.SUCCEEDED:
        return OutgoingMessage(
            kind=MessageKind.PROGRESS,
            title=title,
            tone=Tone.SUCCESS,
            status=f"succeeded in {duration}",
            body=record.summary,
            fields=counts,
        )
    failed_index = next(
        (i for i, s in enumerate(record.steps) if s.state in (StepState.FAILED, StepState.CANCELLED)), None
    )
    where = ""
    if failed_index is not None:
        where = f" at step {failed_index + 1}/{len(record.steps)} {record.steps[failed_index].title}"
    if record.state is JobState.CANCELLED:
        return OutgoingMessage(
            kind=MessageKind.PROGRESS,
            title=title,
            tone=Tone.WARNING,
            status=f"cancelled{where} after {duration}",
            body=record.summary,
            fields=counts,
            footer=f"retry job {record.job_id} resumes where it stopped",
        )
    fields = [
        *([Field(label="Task", value=record.failed_task)] if record.failed_task else []),
        *([Field(label="Host", value=record.failed_host)] if record.failed_host else []),
        *counts,
    ]
    resume_at = record.steps[failed_index].title if failed_index is not None else "the first step"
    error = (record.error or record.summary or "")[:ERROR_TEXT_MAX]
    return OutgoingMessage(
        kind=MessageKind.PROGRESS,
        title=title,
        tone=Tone.DANGER,
        status=f"failed{where} after {duration}",
        body=record.summary if record.summary != record.error else None,
        fields=tuple(fields),
        code=error or None,
        footer=f"retry job {record.job_id} resumes at {resume_at}",
    )
