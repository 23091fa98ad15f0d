"""How an authorized command runs: its handler is called, its job queued (or queued again), its run audited.

The message path, approval clicks and retries all end here, so a job is queued and recorded one way
whichever way it was allowed.
"""

from __future__ import annotations

import asyncio
import functools

from bot.delivery import ChatOut
from bot.metrics import metrics
from bot.replies import notice
from bot.runtime import Runtime, handler_of
from commands.context import CommandContext, CommandResult, Reply, SubmitJob
from commands.parsed import ParsedCommand
from commands.registry import COMMANDS as COMMAND_SPECS
from commands.registry import spec_of, typed_args
from kobot.access import AuthDecision
from kobot.conversations import Conversation, Identity, InboundMessage
from kobot.errors import KobotError
from kobot.messages import Tone
from kobot.risk import Risk

RETRY_COMMAND = "job.retry"
"""Authorized and approved as the command of the job it retries, not only as itself."""


def retry_command(job_id: str) -> ParsedCommand:
    """`retry job N` as the parser would have read it."""
    return ParsedCommand(
        command=RETRY_COMMAND, cluster=None, args={"job": job_id}, risk=COMMAND_SPECS[RETRY_COMMAND].risk
    )


class CommandRuns:
    """Calls handlers, queues the jobs they answer with, and writes the audit entries of both."""

    def __init__(self, *, runtime: Runtime, chat: ChatOut) -> None:
        self.runtime = runtime
        self.chat = chat

    def context(
        self, *, identity: Identity, conversation: Conversation, parsed: ParsedCommand, text: str
    ) -> CommandContext:
        return CommandContext(
            runtime=self.runtime, identity=identity, conversation=conversation, parsed=parsed, text=text
        )

    async def call_handler(self, ctx: CommandContext) -> CommandResult:
        """The command's handler on its typed arguments; a command without one cannot run yet."""
        spec = spec_of(ctx.parsed)
        handler = await handler_of(spec)
        if handler is None:
            raise KobotError(f"{spec.id} is understood but cannot run yet in this kobot version")
        return await handler(
            ctx, typed_args(ctx.parsed, allow_local_hosts=self.runtime.settings.allow_local_hosts)
        )

    async def plan_of(self, ctx: CommandContext) -> SubmitJob | None:
        """The job the command in `ctx` would queue now (None when it would only answer)."""
        if await handler_of(spec_of(ctx.parsed)) is None:
            return None
        result = await self.call_handler(ctx)
        return result if isinstance(result, SubmitJob) else None

    def submit(
        self,
        *,
        identity: Identity,
        conversation: Conversation,
        job: SubmitJob,
        command_text: str,
        parsed: ParsedCommand | None = None,
        job_id: str | None = None,
    ) -> str:
        """Queue the job (as `job_id` when one was reserved); the notifier posts and keeps its progress
        message."""
        service = self.runtime.jobs
        spec = service.new_spec(
            kind=job.kind,
            cluster=job.cluster,
            params=job.params,
            requested_by=identity,
            reply_to=conversation,
            command_text=command_text,
            job_id=job_id,
        )
        record = service.submit(spec)
        metrics().commands.labels(command=job.kind, outcome="queued").inc()
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

    async def resume(
        self,
        *,
        identity: Identity,
        conversation: Conversation,
        parsed: ParsedCommand,
        text: str,
        cluster: str,
    ) -> None:
        """Queue a failed or cancelled job again through the `job.retry` handler, and answer with it."""
        ctx = self.context(identity=identity, conversation=conversation, parsed=parsed, text=text)
        result = await self.call_handler(ctx)
        metrics().commands.labels(command=parsed.command, outcome="answered").inc()
        await self.audit(identity, conversation, "command", parsed, "answered", text, cluster=cluster)
        if isinstance(result, Reply):
            await self.chat.reply(conversation, result.message)

    async def authorized(
        self,
        message: InboundMessage,
        parsed: ParsedCommand,
        *,
        command_id: str,
        risk: Risk,
        cluster: str | None,
    ) -> AuthDecision | None:
        """The policy's decision on running `command_id` at `risk` on `cluster`; a refusal is counted,
        audited on that cluster and answered here, and then None comes back."""
        rt = self.runtime
        ask = functools.partial(
            rt.policy.authorize,
            identity=message.identity,
            conversation=message.conversation,
            command_id=command_id,
            risk=risk,
            cluster=cluster,
        )
        # the directory lookup behind a policy decision may block on a slow LDAP server, so a decision
        # is worked out in a thread; one the policy remembers is taken here, sparing the thread hop
        decision = rt.policy.remembered_decision(**ask.keywords)
        if decision is None:
            decision = await asyncio.to_thread(ask)
        if decision.allowed:
            return decision
        metrics().commands.labels(command=parsed.command, outcome="refused").inc()
        await self.audit(
            message.identity,
            message.conversation,
            "command.refused",
            parsed,
            decision.reason,
            message.text,
            cluster=cluster,
        )
        await self.chat.reply(message.conversation, notice("Not allowed", decision.reason, Tone.WARNING))
        return None

    async def audit(
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
        shown to that cluster's auditors and to no one else's. Written without blocking the event loop
        (on its own store connection), together with the entries of other commands handled meanwhile
        (`AuditLog.append`); it is in the store when this returns."""
        await self.runtime.audit.append(
            who=who,
            where=where,
            action=action,
            cluster=cluster,
            detail={"command": parsed.command, "text": text, "risk": parsed.risk.value},
            result=result,
        )
