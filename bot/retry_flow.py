"""`retry job N`: the job's own command once more, authorized and approved as that command.

A retry resumes a failed or cancelled job with its stored params. It is checked as the command that
queued the job (its risk, on its cluster), read again from the job's text and refused when that text no
longer asks for exactly this job. A command that needs approval runs again only under an approval that
the same person asked for, that is unexpired and bound to the same plan as now; otherwise it asks afresh.
"""

from __future__ import annotations

from pydantic import ValidationError

from bot.approval_flow import ApprovalFlow
from bot.approvals import ApprovalRequest
from bot.command_runs import CommandRuns
from bot.delivery import ChatOut
from bot.runtime import Runtime
from commands.context import SubmitJob
from commands.handlers.submit import RECORDED_CONTEXT_PARAMS, job_params
from commands.parsed import ParsedCommand
from commands.parser import parse
from commands.registry import spec_of, typed_args
from kobot.access import AuthDecision
from kobot.conversations import InboundMessage
from kobot.errors import CommandError, ConflictError
from kobot.job_records import JobRecord, JobState


class RetryFlow:
    """Handles an authorized `retry job N`."""

    def __init__(
        self, *, runtime: Runtime, chat: ChatOut, runs: CommandRuns, approvals: ApprovalFlow
    ) -> None:
        self.runtime = runtime
        self.chat = chat
        self.runs = runs
        self.approvals = approvals

    async def retry(
        self, message: InboundMessage, parsed: ParsedCommand, retry_decision: AuthDecision
    ) -> str | ApprovalRequest | None:
        """`retry_decision` is the policy's answer for `job.retry` itself; the job's command is asked too.

        Returns the id of the job queued again, the approval request it now waits for, or None when the
        policy refused (and said so)."""
        rt = self.runtime
        record = rt.jobs.records.require(str(parsed.args["job"]))
        if record.state not in (JobState.FAILED, JobState.CANCELLED):
            raise ConflictError(
                f"job {record.job_id} is {record.state.value}; only failed or cancelled jobs can be retried"
            )
        original = original_command(record, allow_local_hosts=rt.settings.allow_local_hosts)
        cluster = record.spec.cluster
        decision = await self.runs.authorized(
            message, parsed, command_id=original.command, risk=original.risk, cluster=cluster
        )
        if decision is None:
            return None
        gate = decision if decision.needs_approval else retry_decision
        if gate.needs_approval:
            asked = await self._approved_for(message, record, original, gate)
            if asked is not None:
                return asked
        await self.runs.resume(
            identity=message.identity,
            conversation=message.conversation,
            parsed=parsed,
            text=message.text,
            cluster=cluster,
        )
        return record.job_id

    async def _approved_for(
        self, message: InboundMessage, record: JobRecord, original: ParsedCommand, gate: AuthDecision
    ) -> ApprovalRequest | None:
        """None when the job's approval still covers this retry; if not, the fresh request asked for."""
        rt = self.runtime
        ctx = self.runs.context(
            identity=message.identity,
            conversation=message.conversation,
            parsed=original,
            text=record.spec.command_text,
        )
        job = await self.runs.plan_of(ctx)
        if job is None or job.cluster != record.spec.cluster or job.kind != record.spec.kind:
            raise ConflictError(
                f"job {record.job_id} cannot be planned again as it was; run its command anew"
            )
        approval = rt.approvals.approval_of_job(job_id=record.job_id)
        # An approval covers the person who asked for it: anyone else retrying asks afresh.
        if (
            approval is not None
            and approval.requester.key == message.identity.key
            and rt.approvals.still_covers(request=approval, plan_hash=job.plan_hash)
        ):
            return None
        resume = next((s.title for s in record.steps if s.state.value != "succeeded"), "the end")
        return await self.approvals.ask(
            self.runs.context(
                identity=message.identity,
                conversation=message.conversation,
                parsed=original,
                text=f"{message.text} (job {record.job_id}: {record.spec.command_text})",
            ),
            SubmitJob(
                kind=job.kind,
                cluster=job.cluster,
                params=job.params,
                title=job.title,
                plan_lines=(f"retry job {record.job_id} from the step {resume!r}", *job.plan_lines),
                plan_hash=job.plan_hash,
            ),
            gate,
            retry_of=record.job_id,
        )


def original_command(record: JobRecord, *, allow_local_hosts: bool) -> ParsedCommand:
    """The command a job was queued for, read again from its text: a retry is that command once more.

    A job whose text no longer parses to a command that queues this job's kind on this cluster with the
    job's own params (a plugin was removed, the grammar changed, the stored record was edited) cannot be
    re-checked, so it is not retried."""

    refusal = ConflictError(
        f"job {record.job_id} cannot be checked against the policy as it was queued; run its command anew"
    )
    try:
        parsed = parse(
            record.spec.command_text,
            default_cluster=record.spec.cluster,
            allow_local_hosts=allow_local_hosts,
        )
    except CommandError:
        raise refusal from None
    if parsed.cluster != record.spec.cluster or spec_of(parsed).job_kind != record.spec.kind:
        raise refusal
    # What resumes is the stored params, so they must be the ones the text asks for.
    try:
        asked = job_params(typed_args(parsed, allow_local_hosts=allow_local_hosts))
    except ValidationError:
        raise refusal from None
    stored = {k: v for k, v in record.spec.params.items() if k not in RECORDED_CONTEXT_PARAMS}
    if asked != stored:
        raise refusal
    return parsed
