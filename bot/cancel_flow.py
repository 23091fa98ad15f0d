"""A click on a job's Cancel button: checked as kobot's own button for that job, then run as if the
clicker had typed `cancel job N`, so the same policy decides and the same audit entries follow.

A click that does not count (not kobot's payload, a job that does not exist, a signature issued for
another job, a click from another conversation) changes nothing, is audited as `job.cancel.refused` and
answered with the reason; a click that counts is audited as `job.cancel.click` before the command runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot import job_buttons
from bot.delivery import ChatOut
from bot.replies import notice
from bot.runtime import Runtime
from kobot.conversations import ButtonClick, InboundMessage
from kobot.job_records import JobRecord
from kobot.messages import Tone

CLICK_AUDIT_ACTION = "job.cancel.click"
REFUSED_AUDIT_ACTION = "job.cancel.refused"

RunTyped = Callable[[InboundMessage], Awaitable[None]]
"""The dispatcher's message path: parse, authorize, run, audit."""


class CancelFlow:
    """Turns verified Cancel clicks into `cancel job N` from the person who clicked."""

    def __init__(self, *, runtime: Runtime, chat: ChatOut, run_typed: RunTyped) -> None:
        self.runtime = runtime
        self.chat = chat
        self._run_typed = run_typed
        self._key = job_buttons.derive_key(runtime.secret)

    async def on_click(self, click: ButtonClick) -> None:
        job_id = job_buttons.job_of(click.value)
        if job_id is None:
            await self._refuse(click, None, None, "This is not a valid Cancel button.")
            return
        record = self.runtime.jobs.records.get(job_id)
        if record is None:
            await self._refuse(click, job_id, None, f"Job {job_id} does not exist.")
            return
        if not job_buttons.verify(key=self._key, value=click.value, record=record):
            await self._refuse(click, job_id, record, f"This Cancel button was not issued for job {job_id}.")
            return
        if click.conversation.key != record.spec.reply_to.key:
            await self._refuse(click, job_id, record, f"Job {job_id} belongs to another conversation.")
            return
        self.runtime.audit.record(
            who=click.identity,
            where=click.conversation,
            action=CLICK_AUDIT_ACTION,
            cluster=record.spec.cluster,
            detail={"job": job_id},
            result="verified",
        )
        await self._run_typed(
            InboundMessage(
                identity=click.identity, conversation=click.conversation, text=f"cancel job {job_id}"
            )
        )

    async def _refuse(
        self, click: ButtonClick, job_id: str | None, record: JobRecord | None, reason: str
    ) -> None:
        self.runtime.audit.record(
            who=click.identity,
            where=click.conversation,
            action=REFUSED_AUDIT_ACTION,
            cluster=record.spec.cluster if record is not None else None,
            detail={"job": job_id, "action_id": click.action_id},
            result=reason,
        )
        await self.chat.reply(click.conversation, notice("Not cancelled", reason, Tone.WARNING))
