"""The delivery loop: drains the outbox into the chat adapters, with retries and backoff.

Runs after the webhook answered, from stored state only. A platform that is down or rate-limiting
(DeliveryError, with `retry_after` when it said so) delays its entries; nothing is dropped, and the
entry always carries the latest state of its group when it is finally delivered. Delivery is at
least once: if the store fails between a send and its record, the message is posted again later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from alerts import defaults
from alerts.models import AlertGroupState
from alerts.render import render_group
from alerts.runbooks import Runbook, RunbookRefused, runbook_for
from alerts.signing import AlertAction, sign_button
from alerts.store import AlertStore, OutboxEntry
from kobot.backoff import capped_backoff
from kobot.chat import ChatAdapter
from kobot.conversations import Conversation, MessageRef
from kobot.errors import DeliveryError
from kobot.messages import OutgoingMessage
from kobot.settings_alerts import AlertsSettings, RouteTarget

log = logging.getLogger(__name__)


def backoff_seconds(attempts: int, retry_after: float | None = None) -> float:
    """Doubling delay from DELIVERY_BACKOFF_SECONDS, capped; a platform's Retry-After wins when longer."""
    delay = capped_backoff(
        attempt=attempts, first=defaults.DELIVERY_BACKOFF_SECONDS, cap=defaults.DELIVERY_BACKOFF_CAP_SECONDS
    )
    return float(max(delay, retry_after or 0.0))


def conversation_of(target: RouteTarget) -> Conversation:
    return Conversation(
        platform=target.platform, conversation_id=target.conversation_id, thread_id=target.thread_id
    )


def signing_key(target: RouteTarget) -> str:
    """What a button is bound to: the conversation (a click's thread may differ from the post's)."""
    return conversation_of(target).key


def offered_runbook(state: AlertGroupState, *, settings: AlertsSettings) -> Runbook | None:
    """The runbook a group's message offers: an allowed template, and only from an authenticated webhook
    (otherwise a stranger's post would choose what runs under the clicker's name)."""
    if not settings.auth_required or not settings.runbook_commands:
        return None
    try:
        return runbook_for(state, templates=settings.runbook_commands)
    except RunbookRefused as exc:
        log.debug("alert group %s offers no runbook: %s", state.group_id, exc)
        return None


class Deliverer:
    """Delivers due outbox entries; `run` loops until stopped, `deliver_due` does one round."""

    def __init__(
        self,
        *,
        store: AlertStore,
        adapters: Mapping[str, ChatAdapter],
        secret: bytes,
        settings: AlertsSettings,
    ) -> None:
        self._store = store
        self._adapters = adapters
        self._secret = secret
        self._settings = settings
        self._limit = asyncio.Semaphore(defaults.DELIVERY_CONCURRENCY)

    async def run(self, *, stop: asyncio.Event, wake: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.deliver_due()
            except Exception:
                log.exception("alert delivery round failed; retrying")
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=defaults.DELIVERY_POLL_SECONDS)

    async def deliver_due(self) -> int:
        """Deliver every entry due now; returns how many were taken."""
        entries = await self._store.due(now=time.time())
        await asyncio.gather(*(self._guarded(entry) for entry in entries))
        return len(entries)

    async def _guarded(self, entry: OutboxEntry) -> None:
        async with self._limit:
            try:
                await asyncio.wait_for(self._deliver(entry), timeout=defaults.DELIVERY_TIMEOUT_SECONDS)
            except DeliveryError as exc:
                await self._retry(entry, exc.retry_after, exc.user_message)
            except TimeoutError:
                await self._retry(entry, None, "timed out")
            except Exception as exc:
                log.exception("delivering %s failed", entry.member)
                await self._retry(entry, None, type(exc).__name__)

    async def _retry(self, entry: OutboxEntry, retry_after: float | None, why: str) -> None:
        delay = await self._store.postpone(
            entry, delay_for=lambda attempts: backoff_seconds(attempts, retry_after), now=time.time()
        )
        log.warning("alert delivery %s refused (%s); retrying in %.1fs", entry.member, why, delay)

    async def _deliver(self, entry: OutboxEntry) -> None:
        if entry.kind == "n":
            await self._deliver_notice(entry)
            return
        loaded = await self._store.load_group(entry.item_id)
        if loaded is None:
            await self._store.drop(entry)
            return
        state, version = loaded
        target = next((t for t in state.targets if t.key == entry.target_key), None)
        adapter = self._adapter(entry, target)
        if target is None or adapter is None:
            await self._store.drop(entry)
            return
        message = self.render(state, target=target, adapter=adapter)
        ref = await self._store.message_ref(entry)
        if ref is None:
            new_ref = await adapter.send(conversation_of(target), message)
        else:
            new_ref = await adapter.update(ref, message)
        await self._store.finish(
            entry, version=version, ref=new_ref, next_due=time.time() + defaults.EDIT_INTERVAL_SECONDS
        )

    def render(self, state: AlertGroupState, *, target: RouteTarget, adapter: ChatAdapter) -> OutgoingMessage:
        def sign(action: AlertAction) -> str:
            return sign_button(
                secret=self._secret,
                group_id=state.group_id,
                action=action,
                conversation_key=signing_key(target),
            )

        return render_group(
            state,
            sign=sign,
            max_bytes=adapter.capabilities.max_message_bytes,
            severity_order=self._settings.severity_order,
            grafana_url=self._settings.grafana_url,
            now=datetime.now(UTC),
            runbook=offered_runbook(state, settings=self._settings),
        )

    async def _deliver_notice(self, entry: OutboxEntry) -> None:
        notice = await self._store.load_notice(entry.item_id)
        target = (
            None if notice is None else next((t for t in notice.targets if t.key == entry.target_key), None)
        )
        adapter = self._adapter(entry, target)
        if notice is None or target is None or adapter is None:
            await self._store.drop(entry)
            return
        ref: MessageRef = await adapter.send(conversation_of(target), notice.message)
        log.debug("cluster event %s delivered as %s", notice.event, ref.message_id)
        await self._store.finish(entry, version=1, ref=None, next_due=time.time())

    def _adapter(self, entry: OutboxEntry, target: RouteTarget | None) -> ChatAdapter | None:
        if target is None:
            return None
        adapter = self._adapters.get(target.platform)
        if adapter is None:
            log.error(
                "alert target %s: platform %s is not configured; entry dropped",
                entry.target_key,
                target.platform,
            )
        return adapter
