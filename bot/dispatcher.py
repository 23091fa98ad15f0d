"""The dispatcher: chat text in, a reply or a queued job out. Parse → authorize → approve? → run.

It is the `InboundSink` every adapter delivers to. It never waits on a job: commands that change
a cluster become jobs (their progress message is the notifier's); risky ones first become approval
requests. Every command, refusal and decision goes to the audit trail.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from typing import Any

from pydantic import ValidationError

from bot.approvals import ApprovalStatus
from bot.metrics import COMMANDS
from bot.runtime import Runtime
from commands.context import CommandContext, Reply, SubmitJob
from commands.handlers.submit import job_params
from commands.parsed import ParsedCommand
from commands.parser import parse
from commands.registry import COMMANDS as COMMAND_SPECS
from commands.registry import spec_of, typed_args
from kobot import defaults
from kobot.conversations import ButtonClick, Conversation, Identity, InboundMessage, MessageRef
from kobot.errors import CommandError, ConflictError, DeliveryError, KobotError
from kobot.job_records import JobRecord, JobState
from kobot.messages import MessageKind, OutgoingMessage, Tone
from kobot.risk import Risk

log = logging.getLogger(__name__)

RETRY_COMMAND = "job.retry"
"""Authorized and approved as the command of the job it retries, not only as itself."""

GENERIC_FAILURE = "Something went wrong on kobot's side; the operators can find it in the logs under {ref}."


class Dispatcher:
    """Implements `InboundSink`; one per running kobot."""

    def __init__(self, *, runtime: Runtime) -> None:
        self.runtime = runtime

    # inbound ---------------------------------------------------------------------------------
    async def on_message(self, message: InboundMessage) -> None:
        await self._answering_errors(self._handle_message(message), message.conversation, message.identity)

    async def on_click(self, click: ButtonClick) -> None:
        await self._answering_errors(self._handle_click(click), click.conversation, click.identity)

    async def _answering_errors(
        self, work: Awaitable[None], conversation: Conversation, who: Identity
    ) -> None:
        """Expected errors are answered with their chat-safe message; anything else with a reference
        the operators find in the log, never with the exception's text."""
        try:
            await work
        except KobotError as exc:
            await self._reply(conversation, _error_message(exc))
        except Exception:
            ref = uuid.uuid4().hex[:12]
            log.exception("handling a chat event failed [ref %s] from %s", ref, who.key)
            await self._reply(conversation, _text("Error", GENERIC_FAILURE.format(ref=ref), Tone.DANGER))

    # commands --------------------------------------------------------------------------------
    async def _handle_message(self, message: InboundMessage) -> None:

        rt = self.runtime
        default_cluster = rt.policy.default_cluster(conversation=message.conversation)
        try:
            parsed = parse(
                message.text,
                default_cluster=default_cluster,
                allow_local_hosts=rt.settings.allow_local_hosts,
            )
        except CommandError as exc:
            COMMANDS.labels(command="unknown", outcome="invalid").inc()
            await self._reply(message.conversation, _command_error(exc))
            return
        spec = spec_of(parsed)
        cluster = self._acted_on(parsed)
        # the directory lookup behind a policy decision may block on a slow LDAP server
        decision = await asyncio.to_thread(
            rt.policy.authorize,
            identity=message.identity,
            conversation=message.conversation,
            command_id=spec.id,
            risk=parsed.risk,
            cluster=cluster,
        )
        if not decision.allowed:
            COMMANDS.labels(command=spec.id, outcome="refused").inc()
            self._audit(
                message.identity,
                message.conversation,
                "command.refused",
                parsed,
                decision.reason,
                message.text,
                cluster=cluster,
            )
            await self._reply(message.conversation, _text("Not allowed", decision.reason, Tone.WARNING))
            return
        if spec.handler is None:
            raise KobotError(f"{spec.id} is understood but cannot run yet in this kobot version")
        if spec.id == RETRY_COMMAND:
            await self._retry(message, parsed, decision)
            return
        if decision.needs_approval and spec.job_kind is None and parsed.risk is not Risk.READ:
            # Only commands that queue a job can wait for approval; the rest act in their handler.
            self._audit(
                message.identity,
                message.conversation,
                "command.refused",
                parsed,
                "needs approval",
                message.text,
                cluster=cluster,
            )
            await self._reply(
                message.conversation,
                _text(
                    "Not allowed",
                    f"the policy asks approval for `{spec.id}`, which acts at once and cannot "
                    "wait for one; an admin can run it",
                    Tone.WARNING,
                ),
            )
            return
        ctx = CommandContext(
            runtime=rt,
            identity=message.identity,
            conversation=message.conversation,
            parsed=parsed,
            text=message.text,
        )
        result = await spec.handler(
            ctx, typed_args(parsed, allow_local_hosts=self.runtime.settings.allow_local_hosts)
        )
        if isinstance(result, Reply):
            COMMANDS.labels(command=spec.id, outcome="answered").inc()
            self._audit(
                message.identity,
                message.conversation,
                "command",
                parsed,
                "answered",
                message.text,
                cluster=self._acted_on(parsed),
            )
            await self._reply(message.conversation, result.message)
            return
        await self._route_job(ctx, result, decision)

    # retries ---------------------------------------------------------------------------------
    async def _retry(self, message: InboundMessage, parsed: ParsedCommand, retry_decision: Any) -> None:
        """`retry job N` runs the job's own command again: it is authorized as that command (its risk, on
        its cluster), and a command that needs approval runs again only under an approval that is still
        unexpired and bound to the same plan as now; otherwise it asks for a fresh one."""
        rt = self.runtime
        record = rt.jobs.records.require(str(parsed.args["job"]))
        if record.state not in (JobState.FAILED, JobState.CANCELLED):
            raise ConflictError(
                f"job {record.job_id} is {record.state.value}; only failed or cancelled jobs can be retried"
            )
        original = _original_command(record, allow_local_hosts=rt.settings.allow_local_hosts)
        cluster = record.spec.cluster
        decision = await asyncio.to_thread(
            rt.policy.authorize,
            identity=message.identity,
            conversation=message.conversation,
            command_id=original.command,
            risk=original.risk,
            cluster=cluster,
        )
        if not decision.allowed:
            COMMANDS.labels(command=parsed.command, outcome="refused").inc()
            self._audit(
                message.identity,
                message.conversation,
                "command.refused",
                parsed,
                decision.reason,
                message.text,
                cluster=cluster,
            )
            await self._reply(message.conversation, _text("Not allowed", decision.reason, Tone.WARNING))
            return
        gate = decision if decision.needs_approval else retry_decision
        if gate.needs_approval:
            ctx = CommandContext(
                runtime=rt,
                identity=message.identity,
                conversation=message.conversation,
                parsed=original,
                text=record.spec.command_text,
            )
            job = await self._plan_of(ctx)
            if job is None or job.cluster != cluster or job.kind != record.spec.kind:
                raise ConflictError(
                    f"job {record.job_id} cannot be planned again as it was; run its command anew"
                )
            approval = rt.approvals.approval_of_job(job_id=record.job_id)
            # An approval covers the person who asked for it: anyone else retrying asks afresh.
            if (
                approval is None
                or approval.requester.key != message.identity.key
                or not rt.approvals.still_covers(request=approval, plan_hash=job.plan_hash)
            ):
                resume = next((s.title for s in record.steps if s.state.value != "succeeded"), "the end")
                await self._ask_approval(
                    CommandContext(
                        runtime=rt,
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
                        plan_lines=(
                            f"retry job {record.job_id} from the step {resume!r}",
                            *job.plan_lines,
                        ),
                        plan_hash=job.plan_hash,
                    ),
                    gate,
                    retry_of=record.job_id,
                )
                return
        await self._resume(
            identity=message.identity,
            conversation=message.conversation,
            parsed=parsed,
            text=message.text,
            cluster=cluster,
        )

    async def _resume(
        self,
        *,
        identity: Identity,
        conversation: Conversation,
        parsed: ParsedCommand,
        text: str,
        cluster: str,
    ) -> None:
        """Queue a failed or cancelled job again through the `job.retry` handler, and answer with it."""
        spec = spec_of(parsed)
        assert spec.handler is not None
        ctx = CommandContext(
            runtime=self.runtime, identity=identity, conversation=conversation, parsed=parsed, text=text
        )
        result = await spec.handler(
            ctx, typed_args(parsed, allow_local_hosts=self.runtime.settings.allow_local_hosts)
        )
        COMMANDS.labels(command=spec.id, outcome="answered").inc()
        self._audit(identity, conversation, "command", parsed, "answered", text, cluster=cluster)
        if isinstance(result, Reply):
            await self._reply(conversation, result.message)

    async def _route_job(self, ctx: CommandContext, job: SubmitJob, decision: Any) -> None:
        parsed = ctx.parsed
        break_glass = parsed.args.get("break_glass")
        if decision.needs_approval and not (break_glass and decision.break_glass_allowed):
            if break_glass:
                await self._reply(
                    ctx.conversation,
                    _text(
                        "Break-glass refused",
                        "you do not hold the break-glass right; asking for approval instead",
                        Tone.WARNING,
                    ),
                )
            await self._ask_approval(ctx, job, decision)
            return
        if decision.needs_approval and break_glass:
            self._audit(
                ctx.identity,
                ctx.conversation,
                "break_glass",
                parsed,
                str(break_glass),
                ctx.text,
                cluster=job.cluster,
            )
            await self._reply(
                ctx.conversation,
                _text(
                    "Break-glass",
                    f"{ctx.identity.label()} runs `{ctx.text}` without approval: {break_glass}",
                    Tone.WARNING,
                ),
            )
        self.submit(
            identity=ctx.identity,
            conversation=ctx.conversation,
            job=job,
            command_text=ctx.text,
            parsed=parsed,
        )

    async def _ask_approval(
        self, ctx: CommandContext, job: SubmitJob, decision: Any, *, retry_of: str | None = None
    ) -> None:
        """Store an approval request for exactly this plan and post its card; nothing runs yet.

        With `retry_of`, the approval resumes that job instead of queueing a new one."""
        rt = self.runtime
        parsed = ctx.parsed
        action = _action(job, parsed)
        if retry_of is not None:
            action["retry_of"] = retry_of
        request = rt.approvals.request(
            requester=ctx.identity,
            conversation=ctx.conversation,
            cluster=job.cluster,
            command_id=parsed.command,
            command_text=ctx.text,
            action=action,
            plan_lines=job.plan_lines,
            plan_hash=job.plan_hash,
            approvals_required=decision.approvals_required,
            approver_role=decision.approver_role or "admin",
            ttl_seconds=rt.settings.approval_ttl_seconds,
        )
        COMMANDS.labels(command=parsed.command, outcome="approval_requested").inc()
        self._audit(
            ctx.identity,
            ctx.conversation,
            "approval.requested",
            parsed,
            request.id,
            ctx.text,
            cluster=job.cluster,
        )
        adapter = rt.adapters[ctx.conversation.platform]
        ref = await _deliver(lambda: adapter.ask(ctx.conversation, rt.approvals.card(request)))
        rt.approvals.attach_message(request_id=request.id, ref=ref)
        if rt.alerts is not None:
            await rt.alerts.publish_cluster_event(
                cluster=job.cluster,
                event="approval_needed",
                # the buttons work only where the request was made; elsewhere it is a notice
                message=rt.approvals.card(request).model_copy(update={"buttons": ()}),
            )

    def submit(
        self,
        *,
        identity: Identity,
        conversation: Conversation,
        job: SubmitJob,
        command_text: str,
        parsed: ParsedCommand | None = None,
    ) -> str:
        """Queue the job; the notifier posts and keeps its progress message."""
        service = self.runtime.jobs
        spec = service.new_spec(
            kind=job.kind,
            cluster=job.cluster,
            params=job.params,
            requested_by=identity,
            reply_to=conversation,
            command_text=command_text,
        )
        record = service.submit(spec)
        COMMANDS.labels(command=job.kind, outcome="queued").inc()
        self.runtime.audit.record(
            who=identity,
            where=conversation,
            action="job.queued",
            cluster=job.cluster,
            detail={
                "job": record.job_id,
                "kind": job.kind,
                "command": command_text,
                "plan_hash": job.plan_hash,
                **({"args": parsed.args} if parsed else {}),
            },
            result=record.state.value,
        )
        return record.job_id

    def _acted_on(self, parsed: ParsedCommand) -> str | None:
        """The cluster a command changes or reads: its own, or for `job …` commands the job's cluster,
        so permissions bound to one cluster cannot reach another cluster's jobs."""
        if parsed.cluster is not None or "job" not in parsed.args:
            return parsed.cluster
        record = self.runtime.jobs.records.get(str(parsed.args["job"]))
        return None if record is None else record.spec.cluster

    # clicks ----------------------------------------------------------------------------------
    async def _handle_click(self, click: ButtonClick) -> None:
        if click.action_id.startswith("approval."):
            await self._decide_approval(click)
        elif click.action_id.startswith("alert.") and self.runtime.alerts is not None:
            outcome = await self.runtime.alerts.handle_click(click)
            if outcome.reply is not None:
                await self._reply(click.conversation, outcome.reply)
            if outcome.command_to_run is not None:
                # As if the clicker typed it: their permissions and the approval rules apply.
                await self.on_message(
                    InboundMessage(
                        identity=click.identity, conversation=click.conversation, text=outcome.command_to_run
                    )
                )
        else:
            await self._reply(
                click.conversation, _text("Unknown button", "that button is not kobot's", Tone.WARNING)
            )

    async def _decide_approval(self, click: ButtonClick) -> None:

        rt = self.runtime
        outcome = await asyncio.to_thread(rt.approvals.decide, click=click)  # may look up LDAP groups
        request = outcome.request
        if outcome.status is ApprovalStatus.REFUSED:
            rt.audit.record(
                who=click.identity,
                where=click.conversation,
                action="approval.refused",
                cluster=request.cluster if request else None,
                detail={"request": request.id if request else None},
                result=outcome.reply or "refused",
            )
            await self._reply(
                click.conversation, _text("Not counted", outcome.reply or "refused", Tone.WARNING)
            )
            return
        assert request is not None
        rt.audit.record(
            who=click.identity,
            where=click.conversation,
            action=f"approval.{outcome.status.value}",
            cluster=request.cluster,
            detail={"request": request.id},
            result=outcome.status.value,
        )
        if outcome.status is ApprovalStatus.APPROVED:
            # The job is queued before the card is edited: a chat that refuses the edit must not lose it.
            await self._run_approved(request, click)
        try:
            await self._edit_card(request.message_ref, outcome.card, click.conversation)
        except DeliveryError:
            log.warning("approval %s decided, but its card could not be edited", request.id)

    async def _run_approved(self, request: Any, click: ButtonClick) -> None:
        rt = self.runtime
        job = await self._replan(request)
        if job is None or job.plan_hash != request.plan_hash:
            rt.audit.record(
                who=None,
                where=click.conversation,
                action="approval.void",
                cluster=request.cluster,
                detail={"request": request.id},
                result="plan changed",
            )
            await self._reply(
                click.conversation,
                _text(
                    "Approval void",
                    f"the plan for `{request.command_text}` changed since it was approved; "
                    "ask again to see the new plan",
                    Tone.WARNING,
                ),
            )
            return
        retry_of = request.action.get("retry_of")
        if retry_of is not None:
            retry = ParsedCommand(
                command=RETRY_COMMAND,
                cluster=None,
                args={"job": retry_of},
                risk=COMMAND_SPECS[RETRY_COMMAND].risk,
            )
            # bound before the job is queued again, so a retry of this retry finds the approval
            rt.approvals.bind_job(request_id=request.id, job_id=str(retry_of))
            await self._resume(
                identity=request.requester,
                conversation=request.conversation,
                parsed=retry,
                text=request.command_text,
                cluster=request.cluster,
            )
            return
        job_id = self.submit(
            identity=request.requester,
            conversation=request.conversation,
            job=job,
            command_text=request.command_text,
        )
        rt.approvals.bind_job(request_id=request.id, job_id=job_id)

    async def _replan(self, request: Any) -> SubmitJob | None:
        """Run the command's handler again now: the approval holds only if the plan is still the same."""
        parsed = ParsedCommand.model_validate(request.action["parsed"])
        ctx = CommandContext(
            runtime=self.runtime,
            identity=request.requester,
            conversation=request.conversation,
            parsed=parsed,
            text=request.command_text,
        )
        return await self._plan_of(ctx)

    async def _plan_of(self, ctx: CommandContext) -> SubmitJob | None:
        """The job the command in `ctx` would queue now (None when it would only answer)."""
        spec = spec_of(ctx.parsed)
        if spec.handler is None:
            return None
        result = await spec.handler(
            ctx, typed_args(ctx.parsed, allow_local_hosts=self.runtime.settings.allow_local_hosts)
        )
        return result if isinstance(result, SubmitJob) else None

    async def expire_approvals(self) -> None:
        """Expire due approval requests and show it on their cards."""
        for outcome in self.runtime.approvals.expire_due():
            request = outcome.request
            if request is None:
                continue
            self.runtime.audit.record(
                who=None,
                where=request.conversation,
                action="approval.expired",
                cluster=request.cluster,
                detail={"request": request.id},
                result="expired",
            )
            await self._edit_card(request.message_ref, outcome.card, request.conversation)

    async def _edit_card(
        self, ref: MessageRef | None, card: OutgoingMessage | None, fallback: Conversation
    ) -> None:
        if card is None:
            return
        adapter = self.runtime.adapters.get(fallback.platform)
        if adapter is None:
            return
        if ref is None:
            await _deliver(lambda: adapter.send(fallback, card))
        else:
            await _deliver(lambda: adapter.update(ref, card))

    # helpers ---------------------------------------------------------------------------------
    async def _reply(self, conversation: Conversation, message: OutgoingMessage) -> None:
        adapter = self.runtime.adapters.get(conversation.platform)
        if adapter is None:
            log.warning("no adapter for %s; reply dropped", conversation.platform)
            return
        await _deliver(lambda: adapter.send(conversation, message))

    def _audit(
        self,
        who: Identity,
        where: Conversation,
        action: str,
        parsed: ParsedCommand,
        result: str,
        text: str,
        *,
        cluster: str | None,
    ) -> None:
        """`cluster` is the one the command acted on (a `job …` command's is its job's), so the entry is
        shown to that cluster's auditors and to no one else's."""
        self.runtime.audit.record(
            who=who,
            where=where,
            action=action,
            cluster=cluster,
            detail={"command": parsed.command, "text": text, "risk": parsed.risk.value},
            result=result,
        )


async def _deliver(send: Any) -> MessageRef:
    """Send with retries: a platform that refuses for a while delays the message, it does not lose it."""

    delay = defaults.CHAT_DELIVERY_BACKOFF_SECONDS
    for attempt in range(1, defaults.CHAT_DELIVERY_ATTEMPTS + 1):
        try:
            ref: MessageRef = await send()
            return ref
        except DeliveryError as exc:
            if attempt == defaults.CHAT_DELIVERY_ATTEMPTS:
                raise
            wait = exc.retry_after or delay
            log.warning(
                "chat delivery failed (%s); attempt %d, retrying in %.1fs", exc.user_message, attempt, wait
            )
            await asyncio.sleep(wait)
            delay = min(delay * 2, defaults.CHAT_DELIVERY_BACKOFF_CAP_SECONDS)
    raise AssertionError("unreachable")


def _original_command(record: JobRecord, *, allow_local_hosts: bool) -> ParsedCommand:
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
    if asked != record.spec.params:
        raise refusal
    return parsed


def _action(job: SubmitJob, parsed: ParsedCommand) -> dict[str, Any]:
    return {"parsed": parsed.model_dump(mode="json"), "kind": job.kind, "cluster": job.cluster}


def _text(title: str, body: str, tone: Tone) -> OutgoingMessage:
    return OutgoingMessage(kind=MessageKind.REPLY, title=title, body=body, tone=tone)


def _command_error(exc: CommandError) -> OutgoingMessage:
    body = exc.user_message
    if exc.suggestions:
        body += "\nDid you mean: " + ", ".join(f"`{s}`" for s in exc.suggestions) + "?"
    return OutgoingMessage(
        kind=MessageKind.REPLY,
        title="I did not understand",
        body=body,
        tone=Tone.WARNING,
        footer="`help` lists what I can do",
    )


def _error_message(exc: KobotError) -> OutgoingMessage:
    return _text("Cannot do that", exc.user_message, Tone.WARNING)
