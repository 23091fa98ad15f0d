"""Handlers of the job commands: status, cancel, retry. A job number is what kobot showed when it queued
the job; the dispatcher authorizes `retry` as the retried job's own command before calling its handler."""

from __future__ import annotations

from commands.context import CommandContext, CommandResult, Reply, reply
from commands.definitions.jobs import JobCancelArgs, JobRetryArgs, JobStatusArgs
from commands.job_card import render_job
from commands.registry import handles
from kobot.clock import utcnow
from kobot.messages import MessageKind, format_elapsed
from workers.events import read_job_events

RECENT_EVENTS_SHOWN = 8
"""Events `job status N verbose` lists."""


@handles(JobStatusArgs)
async def job_status(ctx: CommandContext, args: JobStatusArgs) -> CommandResult:
    record = ctx.runtime.jobs.records.require(str(args.job))
    message = render_job(record)
    if args.verbose:
        events = read_job_events(ctx.runtime.redis, record.job_id)[-RECENT_EVENTS_SHOWN:]
        lines = [
            f"{e.at:%H:%M:%S} {e.type.value} {e.step or ''} {e.task or ''} {e.host or ''}".rstrip()
            for e in events
        ]
        message = message.model_copy(update={"code": "\n".join(lines)})
    steps = "\n".join(f"{i}. {s.title} · {s.state.value}" for i, s in enumerate(record.steps, start=1))
    body = f"{message.body}\n{steps}" if message.body else steps
    return Reply(message.model_copy(update={"kind": MessageKind.REPLY, "body": body}))


@handles(JobCancelArgs)
async def cancel_job(ctx: CommandContext, args: JobCancelArgs) -> CommandResult:
    record = ctx.runtime.jobs.cancel(str(args.job))
    how = "stops at its next check" if record.state.value == "running" else "will not start"
    return reply(f"Cancelling job {record.job_id}", body=f"{record.spec.kind} {record.spec.cluster} {how}")


@handles(JobRetryArgs)
async def retry_job(ctx: CommandContext, args: JobRetryArgs) -> CommandResult:
    record = ctx.runtime.jobs.retry(str(args.job))
    resume = next((s.title for s in record.steps if s.state.value != "succeeded"), "the end")
    age = format_elapsed((utcnow() - record.spec.created_at).total_seconds())
    return reply(
        f"Retrying job {record.job_id}",
        body=f"attempt {record.attempt} resumes at {resume} (first queued {age} ago); "
        "progress follows in the job's message",
    )
