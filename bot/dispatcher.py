"""The dispatcher: chat text in, a reply or a queued job out. Parse → authorize → approve? → run.

It is the `InboundSink` every adapter delivers to. It never waits on a job: commands that change
a cluster become jobs (their progress message is the notifier's); risky ones first become approval
requests. Every command, refusal and decision goes to the audit trail.

This module is the message path and the routing of clicks; what happens next has a module each:
`bot.command_runs` (handlers, queueing, audit), `bot.approval_flow` (approval cards and clicks),
`bot.retry_flow` (`retry job N`) and `bot.delivery` (sending with retries).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable

from bot.approval_flow import ApprovalFlow
from bot.cancel_flow import CancelFlow
from bot.command_outcome import CommandOutcome, Handled
from bot.command_runs import RETRY_COMMAND, CommandRuns
from bot.delivery import ChatOut
from bot.metrics import metrics
from bot.replies import cannot_do, failed_with_ref, not_understood, notice
from bot.retry_flow import RetryFlow
from bot.runtime import Runtime, catalog_loaded, handler_of
from commands.context import CommandContext, Reply, SubmitJob
from commands.job_card import CANCEL_ACTION
from commands.parsed import ParsedCommand
from commands.parser import ClusterMissingError, parse
from commands.registry import spec_of
from kobot.access import AuthDecision
from kobot.conversations import ButtonClick, Conversation, Identity, InboundMessage
from kobot.errors import CommandError, KobotError
from kobot.messages import Tone
from kobot.risk import Risk

log = logging.getLogger(__name__)

SHOW_CLUSTER_COMMAND = "cluster.show"
"""A cluster a person may `show` is one they can see (for acting on the only one when none is named)."""


class Dispatcher:
    """Implements `InboundSink`; one per running kobot."""

    def __init__(self, *, runtime: Runtime) -> None:
        self.runtime = runtime
        self.chat = ChatOut(adapters=runtime.adapters)
        self.runs = CommandRuns(runtime=runtime, chat=self.chat)
        self.approvals = ApprovalFlow(runtime=runtime, chat=self.chat, runs=self.runs)
        self.retries = RetryFlow(runtime=runtime, chat=self.chat, runs=self.runs, approvals=self.approvals)
        self.cancels = CancelFlow(runtime=runtime, chat=self.chat, run_typed=self._handle_message)
        # made with the dispatcher (on its build's thread, in `kobot serve`), not by the first command on
        # the event loop: prometheus_client's import is tens of milliseconds. Not the job queue: the first
        # events after a start wait for this build, and RQ's import made their replies 0.2 s later in the
        # Slack bench; serve's worker imports RQ on its thread a second after ready, and a job submitted
        # sooner imports it on the loop, once.
        metrics()

    # inbound ---------------------------------------------------------------------------------
    async def on_message(self, message: InboundMessage) -> None:
        await self.handle(message)

    async def handle(self, message: InboundMessage, *, parsed: ParsedCommand | None = None) -> CommandOutcome:
        """`on_message`, saying what became of the message; with `parsed`, that command is run as typed
        (not parsed from `message.text`, which is then only what the audit and the job record show)."""
        outcome = await self._answering_errors(
            self._outcome_of(message, parsed), message.conversation, message.identity
        )
        return outcome or CommandOutcome(handled=Handled.ANSWERED)

    async def on_click(self, click: ButtonClick) -> None:
        await self._answering_errors(self._handle_click(click), click.conversation, click.identity)

    async def expire_approvals(self) -> None:
        """Expire due approval requests and show it on their cards."""
        await self.approvals.expire_due()

    async def _answering_errors(
        self, work: Awaitable[CommandOutcome | None], conversation: Conversation, who: Identity
    ) -> CommandOutcome | None:
        """Expected errors are answered with their chat-safe message; anything else with a reference
        the operators find in the log, never with the exception's text."""
        try:
            return await work
        except KobotError as exc:
            await self.chat.reply(conversation, cannot_do(exc))
            return CommandOutcome(handled=Handled.CANNOT_DO, error=exc)
        except Exception:
            ref = uuid.uuid4().hex[:12]
            log.exception("handling a chat event failed [ref %s] from %s", ref, who.key)
            await self.chat.reply(conversation, failed_with_ref(ref))
            return CommandOutcome(handled=Handled.FAILED, ref=ref)

    # commands --------------------------------------------------------------------------------
    async def _parse(self, message: InboundMessage, *, default_cluster: str | None) -> ParsedCommand:
        """Parse with the channel's cluster; a command that still names none acts on the person's only
        visible cluster, and says so in a notice first."""
        allow_local = self.runtime.settings.allow_local_hosts
        await catalog_loaded()
        try:
            return parse(message.text, default_cluster=default_cluster, allow_local_hosts=allow_local)
        except ClusterMissingError:
            sole = self._sole_cluster(message)
            if sole is None:
                raise
        parsed = parse(message.text, default_cluster=sole, allow_local_hosts=allow_local)
        await self.chat.reply(
            message.conversation,
            notice(f"Using {sole}", "the only cluster you can see; name another with `on NAME`", Tone.INFO),
        )
        return parsed

    def _sole_cluster(self, message: InboundMessage) -> str | None:
        """The one cluster this person may see, when there is exactly one: a command that names none acts
        on it (and says so) instead of asking which."""
        rt = self.runtime
        visible = [
            name
            for name in rt.clusters.names()
            if rt.policy.can_run(
                identity=message.identity,
                conversation=message.conversation,
                command_id=SHOW_CLUSTER_COMMAND,
                risk=Risk.READ,
                cluster=name,
            )
        ]
        return visible[0] if len(visible) == 1 else None

    async def _handle_message(self, message: InboundMessage) -> None:
        await self._outcome_of(message)

    async def _outcome_of(
        self, message: InboundMessage, typed: ParsedCommand | None = None
    ) -> CommandOutcome:
        rt = self.runtime
        default_cluster = rt.policy.default_cluster(conversation=message.conversation)
        try:
            parsed = typed or await self._parse(message, default_cluster=default_cluster)
        except CommandError as exc:
            metrics().commands.labels(command="unknown", outcome="invalid").inc()
            await self.chat.reply(message.conversation, not_understood(exc))
            return CommandOutcome(handled=Handled.NOT_UNDERSTOOD, error=exc)
        spec = spec_of(parsed)
        cluster = self._acted_on(parsed)
        decision = await self.runs.authorized(
            message, parsed, command_id=spec.id, risk=parsed.risk, cluster=cluster
        )
        if decision is None:
            return CommandOutcome(handled=Handled.REFUSED)
        if await handler_of(spec) is None:
            raise KobotError(f"{spec.id} is understood but cannot run yet in this kobot version")
        if spec.id == RETRY_COMMAND:
            retried = await self.retries.retry(message, parsed, decision)
            if isinstance(retried, str):
                return CommandOutcome(handled=Handled.QUEUED, job_id=retried)
            if retried is not None:
                return CommandOutcome(handled=Handled.AWAITING_APPROVAL, approval=retried)
            return CommandOutcome(handled=Handled.REFUSED)
        if decision.needs_approval and spec.job_kind is None and parsed.risk is not Risk.READ:
            # Only commands that queue a job can wait for approval; the rest act in their handler.
            await self.runs.audit(
                message.identity,
                message.conversation,
                "command.refused",
                parsed,
                "needs approval",
                message.text,
                cluster=cluster,
            )
            await self.chat.reply(
                message.conversation,
                notice(
                    "Not allowed",
                    f"the policy asks approval for `{spec.id}`, which acts at once and cannot "
                    "wait for one; an admin can run it",
                    Tone.WARNING,
                ),
            )
            return CommandOutcome(handled=Handled.REFUSED)
        ctx = self.runs.context(
            identity=message.identity, conversation=message.conversation, parsed=parsed, text=message.text
        )
        result = await self.runs.call_handler(ctx)
        if isinstance(result, Reply):
            metrics().commands.labels(command=spec.id, outcome="answered").inc()
            await self.runs.audit(
                message.identity,
                message.conversation,
                "command",
                parsed,
                "answered",
                message.text,
                cluster=self._acted_on(parsed),
            )
            await self.chat.reply(message.conversation, result.message)
            return CommandOutcome(handled=Handled.ANSWERED)
        return await self._route_job(ctx, result, decision)

    async def _route_job(self, ctx: CommandContext, job: SubmitJob, decision: AuthDecision) -> CommandOutcome:
        """Queue the job, or ask for approval first; break-glass skips the approval for who may use it."""
        parsed = ctx.parsed
        break_glass = parsed.args.get("break_glass")
        if decision.needs_approval and not (break_glass and decision.break_glass_allowed):
            if break_glass:
                await self.chat.reply(
                    ctx.conversation,
                    notice(
                        "Break-glass refused",
                        "you do not hold the break-glass right; asking for approval instead",
                        Tone.WARNING,
                    ),
                )
            request = await self.approvals.ask(ctx, job, decision)
            return CommandOutcome(handled=Handled.AWAITING_APPROVAL, approval=request)
        if decision.needs_approval and break_glass:
            await self.runs.audit(
                ctx.identity,
                ctx.conversation,
                "break_glass",
                parsed,
                str(break_glass),
                ctx.text,
                cluster=job.cluster,
            )
            await self.chat.reply(
                ctx.conversation,
                notice(
                    "Break-glass",
                    f"{ctx.identity.label()} runs `{ctx.text}` without approval: {break_glass}",
                    Tone.WARNING,
                ),
            )
        job_id = self.runs.submit(
            identity=ctx.identity,
            conversation=ctx.conversation,
            job=job,
            command_text=ctx.text,
            parsed=parsed,
        )
        return CommandOutcome(handled=Handled.QUEUED, job_id=job_id)

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
            await self.approvals.on_click(click)
        elif click.action_id == CANCEL_ACTION:
            # verified as this job's button, then as if typed: the same policy and audit as `cancel job N`
            await self.cancels.on_click(click)
        elif click.action_id.startswith("alert.") and self.runtime.alerts is not None:
            outcome = await self.runtime.alerts.handle_click(click)
            if outcome.reply is not None:
                await self.chat.reply(click.conversation, outcome.reply)
            if outcome.command_to_run is not None:
                # As if the clicker typed it: their permissions and the approval rules apply.
                await self.on_message(
                    InboundMessage(
                        identity=click.identity, conversation=click.conversation, text=outcome.command_to_run
                    )
                )
        else:
            await self.chat.reply(
                click.conversation, notice("Unknown button", "that button is not kobot's", Tone.WARNING)
            )
