"""Approvals as the chat sees them: a card asked for a job's exact plan, clicks counted, the job run once
approved (if its plan is still the one approved), and cards of expired requests edited.

The requests themselves (storage, signatures, who may approve) are `bot.approvals`; this module is what
the dispatcher does with them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

from alerts.subscriptions import ClusterEvent, notify_targets
from bot.approvals import ApprovalRequest, ApprovalStatus
from bot.approvals.defaults import RUN_CLAIM_SECONDS
from bot.command_runs import CommandRuns, retry_command
from bot.delivery import ChatOut
from bot.metrics import metrics
from bot.replies import notice
from bot.runtime import Runtime
from commands.context import CommandContext, SubmitJob
from commands.parsed import ParsedCommand
from kobot.access import AuthDecision
from kobot.background import BackgroundTask, every
from kobot.conversations import ButtonClick
from kobot.errors import DeliveryError
from kobot.job_records import JobState
from kobot.messages import Tone

log = logging.getLogger(__name__)


class ApprovalFlow:
    """Asks for approvals and acts on their decisions and expiry."""

    def __init__(self, *, runtime: Runtime, chat: ChatOut, runs: CommandRuns) -> None:
        self.runtime = runtime
        self.chat = chat
        self.runs = runs

    async def ask(
        self, ctx: CommandContext, job: SubmitJob, decision: AuthDecision, *, retry_of: str | None = None
    ) -> ApprovalRequest:
        """Store an approval request for exactly this plan and post its card; nothing runs yet.

        With `retry_of`, the approval resumes that job instead of queueing a new one."""
        rt = self.runtime
        parsed = ctx.parsed
        action = _action(job, parsed)
        if retry_of is not None:
            action["retry_of"] = retry_of
        channels = await self._approval_channels(ctx, cluster=job.cluster)
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
            approval_channels=channels,
        )
        metrics().commands.labels(command=parsed.command, outcome="approval_requested").inc()
        await self.runs.audit(
            ctx.identity,
            ctx.conversation,
            "approval.requested",
            parsed,
            request.id,
            ctx.text,
            cluster=job.cluster,
        )
        ref = await self.chat.ask(ctx.conversation, rt.approvals.card(request))
        rt.approvals.attach_message(request_id=request.id, ref=ref)
        if rt.alerts is not None:
            card = rt.approvals.card(request)
            await rt.alerts.publish_cluster_event(
                cluster=job.cluster,
                event=ClusterEvent.APPROVAL_NEEDED.value,
                # buttons work where the request was made and, for a one-to-one request, in the
                # cluster's approval channels; anywhere else it is a notice
                message=card if channels else card.model_copy(update={"buttons": ()}),
                # the card with buttons is there already: a subscribed channel that asks sees it once
                posted_in=ctx.conversation.key,
            )
        return request

    async def _approval_channels(self, ctx: CommandContext, *, cluster: str) -> tuple[str, ...]:
        """For a request asked one-to-one (no other approver sees it there): the conversations subscribed
        to the cluster's approval requests (`notify <cluster> approvals here`)."""
        alerts = self.runtime.alerts
        if alerts is None or not ctx.conversation.is_direct:
            return ()
        targets = await notify_targets(
            alerts.redis, cluster=cluster, event=ClusterEvent.APPROVAL_NEEDED.value
        )
        own = ctx.conversation.key
        return tuple(t.key for t in targets if not t.thread_id and t.key != own)

    async def on_click(self, click: ButtonClick) -> None:
        """Count a click on an approval button; an approval that completes the count runs the job."""
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
            await self.chat.reply(
                click.conversation, notice("Not counted", outcome.reply or "refused", Tone.WARNING)
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
            await self.run_approved(request)
        try:
            await self.chat.edit_card(request.message_ref, outcome.card, click.conversation)
        except DeliveryError:
            log.warning("approval %s decided, but its card could not be edited", request.id)

    async def expire_due(self) -> None:
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
            await self.chat.edit_card(request.message_ref, outcome.card, request.conversation)

    async def run_unrun(self) -> None:
        """Queue the jobs of approved requests that have none yet: a process that died between writing
        the decision and queueing the job left them (a click being handled right now holds its turn)."""
        for request in await asyncio.to_thread(self.runtime.approvals.unrun):
            await self.run_approved(request)

    async def run_approved(self, request: ApprovalRequest) -> None:
        """Queue an approved request's job exactly once, whoever calls (the click, or the sweep after a
        crash): one process at a time holds the turn, and the job id is reserved before the job is
        queued, so a second try finds the job the first one queued."""
        rt = self.runtime
        owner = f"{socket.gethostname()}:{os.getpid()}"
        if not rt.approvals.claim_run(request_id=request.id, owner=owner):
            return  # another process is queueing it right now
        keeper = BackgroundTask(f"approval-{request.id}-turn")

        async def renew() -> None:
            await asyncio.to_thread(rt.approvals.renew_run, request_id=request.id, owner=owner)

        keeper.start(
            every(RUN_CLAIM_SECONDS / 3, renew, log=log, what="renewing an approval's turn", wait_first=True)
        )
        try:
            await self._run_claimed(request)
        except Exception:
            rt.approvals.release_run(request_id=request.id)
            raise
        finally:
            await keeper.stop()

    async def _run_claimed(self, request: ApprovalRequest) -> None:
        rt = self.runtime
        where = request.conversation
        retry_of = request.action.get("retry_of")
        job_id = None
        if retry_of is None:
            job_id = rt.approvals.reserve_job(request_id=request.id, new_job_id=rt.jobs.records.next_id)
            if rt.jobs.records.get(job_id) is not None:
                log.warning("approval %s: job %s was queued before a crash; binding it", request.id, job_id)
                rt.approvals.mark_run(request_id=request.id, job_id=job_id)
                return
        elif not _resumable(rt, str(retry_of)):
            rt.approvals.mark_run(request_id=request.id, job_id=str(retry_of))  # resumed before a crash
            return
        job = await self._replan(request)
        if job is None or job.plan_hash != request.plan_hash:
            rt.audit.record(
                who=None,
                where=where,
                action="approval.void",
                cluster=request.cluster,
                detail={"request": request.id},
                result="plan changed",
            )
            rt.approvals.mark_run(request_id=request.id, job_id=None)
            await self.chat.reply(
                where,
                notice(
                    "Approval void",
                    f"the plan for `{request.command_text}` changed since it was approved; "
                    "ask again to see the new plan",
                    Tone.WARNING,
                ),
            )
            return
        if retry_of is not None:
            # bound before the job is queued again, so a retry of this retry finds the approval
            rt.approvals.bind_job(request_id=request.id, job_id=str(retry_of))
            await self.runs.resume(
                identity=request.requester,
                conversation=where,
                parsed=retry_command(retry_of),
                text=request.command_text,
                cluster=request.cluster,
            )
            rt.approvals.mark_run(request_id=request.id, job_id=str(retry_of))
            return
        self.runs.submit(
            identity=request.requester,
            conversation=where,
            job=job,
            command_text=request.command_text,
            job_id=job_id,
        )
        rt.approvals.mark_run(request_id=request.id, job_id=job_id)

    async def _replan(self, request: ApprovalRequest) -> SubmitJob | None:
        """Run the command's handler again now: the approval holds only if the plan is still the same."""
        ctx = self.runs.context(
            identity=request.requester,
            conversation=request.conversation,
            parsed=ParsedCommand.model_validate(request.action["parsed"]),
            text=request.command_text,
        )
        return await self.runs.plan_of(ctx)


def _resumable(runtime: Runtime, job_id: str) -> bool:
    """Whether the job an approved retry resumes still waits for it (failed or cancelled)."""
    record = runtime.jobs.records.get(job_id)
    return record is not None and record.state in (JobState.FAILED, JobState.CANCELLED)


def _action(job: SubmitJob, parsed: ParsedCommand) -> dict[str, Any]:
    """What an approved request runs: the command as parsed, and the job it asked for."""
    return {"parsed": parsed.model_dump(mode="json"), "kind": job.kind, "cluster": job.cluster}
