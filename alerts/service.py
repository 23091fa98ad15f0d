"""AlertService: what the app mounts and starts. Receiver, delivery loop, button clicks, message center.

Button clicks with `action_id` "alert.*" come here from the dispatcher. `handle_click` returns an
`AlertClickOutcome`: the message to show the clicker, and for a "Run runbook" click the command the
dispatcher runs as if the clicker had typed it in that conversation, so permissions and approvals
apply as usual. That command is always one of the admin's `runbook_commands` (see `alerts.runbooks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import APIRouter
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

from alerts import defaults
from alerts.audit import record_audit
from alerts.delivery import Deliverer
from alerts.exposure import check_webhook_exposure
from alerts.models import AlertGroupState, AlertStatus, Notice, SilenceRecord
from alerts.receiver import build_router
from alerts.runbooks import RunbookRefused, check_templates, runbook_for
from alerts.signing import AlertAction, ButtonRefused, verify_button
from alerts.silences import SilenceError, create_silence
from alerts.store import AlertStore, IngestResult, open_alert_store
from alerts.subscriptions import notify_targets
from kobot.access import Authorizer
from kobot.audit import AuditLog
from kobot.background import BackgroundTask
from kobot.chat import ChatAdapter
from kobot.conversations import ButtonClick
from kobot.messages import Field, MessageKind, OutgoingMessage, Tone
from kobot.risk import Risk
from kobot.settings import Settings
from kobot.settings_alerts import AlertsSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertClickOutcome:
    """What an alert button click comes to: a reply for the clicker, and a command to run as theirs."""

    reply: OutgoingMessage | None = None
    command_to_run: str | None = None
    """Run as if the clicker typed it in the click's conversation (their rights, the approval rules)."""


NOT_OURS = AlertClickOutcome()


def runbook_reply(
    *, command: str, cluster: str | None, alert_title: str, requested_by: str
) -> OutgoingMessage:
    fields = (Field(label="Cluster", value=cluster),) if cluster else ()
    return OutgoingMessage(
        kind=MessageKind.REPLY,
        title=f"Runbook for {alert_title}",
        tone=Tone.RUNNING,
        status=f"requested by {requested_by}",
        fields=fields,
        code=command,
    )


def _refusal(reason: str) -> AlertClickOutcome:
    return AlertClickOutcome(
        reply=OutgoingMessage(
            kind=MessageKind.REPLY, title="Alert action refused", tone=Tone.DANGER, body=reason
        )
    )


class AlertService:
    """Alerts for one kobot process: mount `router()`, `await start()`, and `await stop()` at shutdown."""

    def __init__(
        self,
        *,
        settings: Settings,
        store_url: str,
        adapters: Mapping[str, ChatAdapter],
        secret: bytes,
        policy: Authorizer | None = None,
        audit: AuditLog | None = None,
        store: AlertStore | None = None,
        settings_checked: bool = False,
    ) -> None:
        """`adapters` is read at each delivery, so adapters added after this still get their alerts;
        without `policy` every click is allowed (tests), without `audit` actions go straight to the stream.
        `store`: the alert store a webhook already writes to (`kobot serve` opens it, and mounts the
        webhook, before it builds the service); this service then owns it. By default one on `store_url`.
        `settings_checked`: the caller ran `check_webhook_exposure` and `check_templates` already (`kobot
        serve`, at its start), so their warnings are not said twice."""
        self._secret = secret
        self._policy = policy
        self._audit_log = audit
        self.settings: AlertsSettings = settings.alerts
        if not settings_checked:
            check_webhook_exposure(self.settings, http_host=settings.http_host)
            check_templates(self.settings.runbook_commands)
        self.store = store or open_alert_store(store_url)
        self.redis: AsyncRedis = self.store.redis
        self.deliverer = Deliverer(store=self.store, adapters=adapters, secret=secret, settings=self.settings)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task = BackgroundTask("alert-delivery")

    def router(self) -> APIRouter:
        """POST /alerts/alertmanager."""
        return build_router(settings=self.settings, store=self.store, on_stored=self.stored)

    async def start(self) -> None:
        """Start the delivery loop; entries stored before a crash or restart are delivered first."""
        if self._task.running:
            return
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._task.start(self.deliverer.run(stop=self._stop, wake=self._wake))

    async def stop(self) -> None:
        """End the delivery loop (a delivery in flight gets DELIVERY_STOP_GRACE_SECONDS), record what was
        delivered but not yet recorded, and hand this process's claims back so a successor starts at once."""
        self._stop.set()
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            await self._task.wait(timeout=defaults.DELIVERY_STOP_GRACE_SECONDS)
        try:
            await self.deliverer.record_unrecorded()
            await self.store.release_claims(now=time.time())
        except RedisError as exc:
            log.warning("alert claims not handed back at stop (%s); they free themselves shortly", exc)
        await self.redis.aclose()

    async def stored(self, result: IngestResult) -> None:
        """A webhook stored `result`: a new group or change is delivered now, not at the next round."""
        if not result.duplicate:
            self._wake.set()

    async def handle_click(self, click: ButtonClick) -> AlertClickOutcome:
        """Silence, Ack or Run runbook from an alert message; an empty outcome when the click is not ours."""
        if not click.action_id.startswith("alert."):
            return NOT_OURS
        try:
            grant = verify_button(
                secret=self._secret,
                value=click.value,
                action_id=click.action_id,
                conversation_key=click.conversation.key,
            )
        except ButtonRefused as exc:
            await self._audit(click, what=f"{click.action_id} (unverified)", result=f"refused: {exc}")
            return _refusal(str(exc))
        loaded = await self.store.load_group(grant.group_id)
        if loaded is None:
            return _refusal("this alert group is no longer known to kobot")
        state, _ = loaded
        refusal = await asyncio.to_thread(self._not_permitted, click, state, grant.action)
        if refusal is not None:
            await self._audit(
                click, cluster=state.label("cluster"), what=click.action_id, result=f"refused: {refusal}"
            )
            return _refusal(refusal)
        if grant.action is AlertAction.ACK:
            return AlertClickOutcome(reply=await self._ack(click, state))
        if grant.action is AlertAction.RUNBOOK:
            return await self._runbook(click, state)
        return await self._silence(click, state, grant.action)

    def _not_permitted(self, click: ButtonClick, state: AlertGroupState, action: AlertAction) -> str | None:
        """Silencing or acking changes what a team sees: it needs a `change` right on the alert's cluster.
        (Run runbook is checked when its command runs, like any typed command.)"""
        policy = self._policy
        if policy is None or action is AlertAction.RUNBOOK:
            return None
        command_id = "alerts.ack" if action is AlertAction.ACK else "alerts.silence"
        decision = policy.authorize(
            identity=click.identity,
            conversation=click.conversation,
            command_id=command_id,
            risk=Risk.CHANGE,
            # a group spanning clusters (no single cluster label) needs the right on every cluster
            cluster=state.label("cluster") or "*",
        )
        return None if decision.allowed else str(decision.reason)

    async def _ack(self, click: ButtonClick, state: AlertGroupState) -> OutgoingMessage:
        who = click.identity.label()
        if state.acked_by:
            return OutgoingMessage(title=f"Already acked by {state.acked_by}", tone=Tone.INFO)
        now = datetime.now(UTC)

        def take(current: AlertGroupState) -> AlertGroupState:
            if current.acked_by:
                return current
            return current.model_copy(update={"acked_by": who, "acked_at": now})

        updated = await self.store.update_group(state.group_id, take, now=now)
        self._wake.set()
        await self._audit(
            click,
            cluster=state.label("cluster"),
            what=f"ack alert group {_describe(state)}",
            result=f"acked by {updated.acked_by}",
        )
        return OutgoingMessage(title=f"Acked by {updated.acked_by}", tone=Tone.SUCCESS, body=_describe(state))

    async def _silence(
        self, click: ButtonClick, state: AlertGroupState, action: AlertAction
    ) -> AlertClickOutcome:
        seconds = action.silence_seconds or 0
        duration = action.value.removeprefix("silence")
        # The token goes only to the configured URL, never to an externalURL a webhook body named; and an
        # unauthenticated webhook cannot choose where kobot sends silences.
        base_url = self.settings.alertmanager_url or (
            state.external_url if self.settings.auth_required else None
        )
        if not base_url:
            return _refusal("no Alertmanager URL is configured for silences")
        now = datetime.now(UTC)
        who = click.identity.label()
        try:
            silence_id, ends_at = await create_silence(
                base_url=base_url,
                labels=state.silence_labels(),
                created_by=who,
                comment=_silence_comment(
                    duration=duration, platform=click.conversation.platform, state=state
                ),
                starts_at=now,
                duration_seconds=seconds,
                token=self.settings.alertmanager_bearer_token if self.settings.alertmanager_url else None,
            )
        except SilenceError as exc:
            await self._audit(
                click,
                cluster=state.label("cluster"),
                what=f"silence {duration} {_describe(state)}",
                result=f"failed: {exc.user_message}",
            )
            return _refusal(exc.user_message)
        record = SilenceRecord(silence_id=silence_id, created_by=who, ends_at=ends_at)

        def add(current: AlertGroupState) -> AlertGroupState:
            return current.model_copy(update={"silences": [*current.silences, record]})

        await self.store.update_group(state.group_id, add, now=now)
        self._wake.set()
        await self._audit(
            click,
            cluster=state.label("cluster"),
            what=f"silence {duration} {_describe(state)}",
            result=f"silence {silence_id}",
        )
        return AlertClickOutcome(
            reply=OutgoingMessage(
                title=f"Silenced for {duration}",
                tone=Tone.SUCCESS,
                body=_describe(state),
                fields=(
                    Field(label="Silence", value=silence_id),
                    Field(label="Until", value=f"{ends_at:%H:%M} UTC"),
                ),
            )
        )

    async def _runbook(self, click: ButtonClick, state: AlertGroupState) -> AlertClickOutcome:
        if not self.settings.auth_required:
            return _refusal("runbooks run only from an authenticated Alertmanager webhook")
        if state.status is AlertStatus.RESOLVED:
            return _refusal("this alert group has resolved")
        try:
            runbook = runbook_for(state, templates=self.settings.runbook_commands)
        except RunbookRefused as exc:
            await self._audit(
                click,
                cluster=state.label("cluster"),
                what=f"runbook for {_describe(state)}",
                result=f"refused: {exc}",
            )
            return _refusal(str(exc))
        await self._audit(
            click,
            cluster=state.label("cluster"),
            what=f"runbook {runbook.template_id}: {runbook.command!r} for {_describe(state)}",
            result="handed to dispatcher",
        )
        message = runbook_reply(
            command=runbook.command,
            cluster=state.label("cluster"),
            alert_title=_describe(state),
            requested_by=click.identity.label(),
        )
        return AlertClickOutcome(reply=message, command_to_run=runbook.command)

    async def publish_cluster_event(
        self, *, cluster: str, event: str, message: OutgoingMessage, posted_in: str | None = None
    ) -> None:
        """Queue `message` for every conversation subscribed to `event` of `cluster` (with retries).

        `posted_in` (`platform:conversation_id`): the conversation the message was already posted to by
        its sender, skipped here (any thread of it) so that it does not show there twice."""
        targets = [
            t
            for t in await notify_targets(self.redis, cluster=cluster, event=event)
            if f"{t.platform}:{t.conversation_id}" != posted_in
        ]
        if not targets:
            return
        notice = Notice(
            notice_id=uuid.uuid4().hex, cluster=cluster, event=event, message=message, targets=targets
        )
        await self.store.add_notice(notice, due=datetime.now(UTC).timestamp())
        self._wake.set()

    async def _audit(self, click: ButtonClick, *, what: str, result: str, cluster: str | None = None) -> None:
        """Into kobot's audit log when it was given one, else straight into the `kobot:audit` stream."""
        audit = self._audit_log
        try:
            if audit is not None:
                audit.record(
                    who=click.identity,
                    where=click.conversation,
                    action=click.action_id,
                    cluster=cluster,
                    detail={"what": what},
                    result=result,
                )
                return
            await record_audit(
                self.redis,
                who=click.identity,
                where=click.conversation,
                what=what,
                result=result,
                cluster=cluster,
            )
        except RedisError:
            log.exception("audit entry not written: %s by %s", what, click.identity.key)


def _silence_comment(*, duration: str, platform: str, state: AlertGroupState) -> str:
    return f"Silenced for {duration} from the {platform} chat: {_describe(state)}"


def _describe(state: AlertGroupState) -> str:
    cluster = state.label("cluster") or "unknown cluster"
    name = state.label("alertname") or "alert group"
    return f"{cluster} · {name}"
