"""The delivery loop: drains the outbox into the chat adapters, with retries and backoff.

Runs after the webhook answered, from stored state only. A platform that is down or rate-limiting
(DeliveryError, with `retry_after` when it said so) delays its entries; nothing is dropped, and the
entry always carries the latest state of its group when it is finally delivered.

One message per group and conversation: a post is marked in the store before it is sent; a ref the
store could not take is kept in memory and recorded again each round (and used for the next edit);
and when a marked post has no ref (the process died, or the platform's answer was lost), the next
attempt asks an adapter that can (`TaggedPosting`: Slack's message metadata, DingTalk's card id) for
the message tagged with the group before posting again, rendered as of the first attempt (WeCom drops
a repeated identical app message). Adapters without it, and conversations the platform cannot tag
(DingTalk custom robots, WeCom group chats and robots), post again: at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.exceptions import RedisError

from alerts import defaults
from alerts.models import AlertGroupState
from alerts.render import render_group
from alerts.runbooks import Runbook, RunbookRefused, runbook_for
from alerts.signing import AlertAction, sign_button
from alerts.store import AlertStore, OutboxEntry
from kobot.background import every
from kobot.backoff import capped_backoff
from kobot.chat import ChatAdapter, TaggedPosting
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


def post_tag(state: AlertGroupState) -> str:
    """What a group's post is tagged with: the group and its episode (a group that fires again after it
    resolved gets a fresh message, so its old one must not be found)."""
    return f"{state.group_id}.{state.episode}"


def delivery_timeout(adapter: ChatAdapter) -> float:
    """How long one delivery through `adapter` may run: never less than the adapter's own budget."""
    budget = adapter.call_budget_seconds
    if budget is None:
        return defaults.DELIVERY_TIMEOUT_SECONDS
    return max(defaults.DELIVERY_TIMEOUT_SECONDS, budget + defaults.DELIVERY_TIMEOUT_MARGIN_SECONDS)


@dataclass(frozen=True)
class Unrecorded:
    """A delivery the platform took whose record the store did not (yet)."""

    entry: OutboxEntry
    version: int
    ref: MessageRef | None


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`clock` (epoch seconds) is what the outbox is read, and a message rendered and its buttons
        signed, as of; tests pass a clock they can move. The heartbeat keeps real time (other processes
        read it)."""
        self._clock = clock
        self._store = store
        self._adapters = adapters
        self._secret = secret
        self._settings = settings
        self._limit = asyncio.Semaphore(defaults.DELIVERY_CONCURRENCY)
        self._unrecorded: dict[str, Unrecorded] = {}
        self._unscheduled: dict[str, tuple[OutboxEntry, float | None]] = {}
        """Failed deliveries whose retry the store could not schedule: their claim would hold them."""

    @property
    def unrecorded(self) -> int:
        """Deliveries made whose record still waits for the store."""
        return len(self._unrecorded)

    async def run(self, *, stop: asyncio.Event, wake: asyncio.Event) -> None:
        """Deliver until `stop`; a heartbeat beside it keeps this process's claims and frees dead ones'."""
        heartbeat = asyncio.create_task(
            every(
                defaults.OWNER_HEARTBEAT_SECONDS,
                lambda: self._store.heartbeat(now=time.time()),
                log=log,
                what="alert delivery heartbeat",
            ),
            name="alert-delivery-heartbeat",
        )
        try:
            while not stop.is_set():
                try:
                    await self.record_unrecorded()
                    await self.deliver_due()
                except Exception:
                    log.exception("alert delivery round failed; retrying")
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=defaults.DELIVERY_POLL_SECONDS)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    def claim_seconds(self) -> float:
        """How long a claim lasts: the longest delivery any configured adapter may take, plus a margin."""
        longest = max(
            (delivery_timeout(adapter) for adapter in self._adapters.values()),
            default=defaults.DELIVERY_TIMEOUT_SECONDS,
        )
        return longest + defaults.CLAIM_MARGIN_SECONDS

    async def deliver_due(self) -> int:
        """Deliver every entry due now; returns how many were taken."""
        entries = await self._store.due(now=self._clock(), claim_seconds=self.claim_seconds())
        await asyncio.gather(*(self._guarded(entry) for entry in entries))
        return len(entries)

    async def record_unrecorded(self) -> None:
        """Record the deliveries the store could not take when they were made, and schedule the retries
        it could not; the first failure ends the round (the store is still away)."""
        for member, pending in list(self._unrecorded.items()):
            await self._record(pending)
            if self._unrecorded.get(member) is pending:
                del self._unrecorded[member]
        for member, (entry, retry_after) in list(self._unscheduled.items()):
            await self._postpone(entry, retry_after)
            self._unscheduled.pop(member, None)

    async def _record(self, pending: Unrecorded) -> None:
        await self._store.finish(
            pending.entry,
            version=pending.version,
            ref=pending.ref,
            next_due=self._clock() + (defaults.EDIT_INTERVAL_SECONDS if pending.entry.kind == "g" else 0.0),
        )

    async def _guarded(self, entry: OutboxEntry) -> None:
        async with self._limit:
            try:
                await asyncio.wait_for(self._deliver(entry), timeout=self._timeout(entry))
            except DeliveryError as exc:
                await self._retry(entry, exc.retry_after, exc.user_message)
            except TimeoutError:
                await self._retry(entry, None, "timed out")
            except Exception as exc:
                log.exception("delivering %s failed", entry.member)
                await self._retry(entry, None, type(exc).__name__)

    def _timeout(self, entry: OutboxEntry) -> float:
        adapter = self._adapters.get(entry.target_key.partition(":")[0])
        return delivery_timeout(adapter) if adapter is not None else defaults.DELIVERY_TIMEOUT_SECONDS

    async def _retry(self, entry: OutboxEntry, retry_after: float | None, why: str) -> None:
        if entry.member in self._unrecorded:
            log.warning("alert delivery %s made; its record waits for the store (%s)", entry.member, why)
            return
        try:
            delay = await self._postpone(entry, retry_after)
        except RedisError as exc:
            self._unscheduled[entry.member] = (entry, retry_after)
            log.warning(
                "alert delivery %s refused (%s); rescheduled once the store is back (%s)",
                entry.member,
                why,
                exc,
            )
            return
        log.warning("alert delivery %s refused (%s); retrying in %.1fs", entry.member, why, delay)

    async def _postpone(self, entry: OutboxEntry, retry_after: float | None) -> float:
        return await self._store.postpone(
            entry, delay_for=lambda attempts: backoff_seconds(attempts, retry_after), now=self._clock()
        )

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
        if target is None:
            await self._store.drop(entry)
            return
        adapter = self._adapters.get(target.platform)
        if adapter is None:
            await self._elsewhere(entry, target)
            return
        conversation = conversation_of(target)
        tag = post_tag(state)
        ref, posting_since = await self._shown_in(entry, conversation=conversation, adapter=adapter, tag=tag)
        now = self._clock()
        # A post made again is rendered as of the first attempt: unchanged, it is the same request, which
        # platforms that drop repeated requests (WeCom's duplicate check) show once.
        moment = posting_since if ref is None and posting_since is not None else now
        message = self.render(
            state, target=target, adapter=adapter, now=datetime.fromtimestamp(moment, tz=UTC)
        )
        if ref is None:
            await self._store.mark_posting(entry, now=now)
            if isinstance(adapter, TaggedPosting):
                new_ref = await adapter.send_tagged(conversation, message, tag=tag)
            else:
                new_ref = await adapter.send(conversation, message)
        else:
            new_ref = await adapter.update(ref, message)
        await self._made(Unrecorded(entry=entry, version=version, ref=new_ref))

    async def _made(self, made: Unrecorded) -> None:
        """The platform took the message: record it, or keep it in memory until the store takes it."""
        self._unrecorded[made.entry.member] = made
        await self._record(made)
        if self._unrecorded.get(made.entry.member) is made:
            del self._unrecorded[made.entry.member]

    async def _shown_in(
        self, entry: OutboxEntry, *, conversation: Conversation, adapter: ChatAdapter, tag: str
    ) -> tuple[MessageRef | None, float | None]:
        """The message showing the group in this conversation: the ref this process holds unrecorded,
        the stored one, or one an unfinished post left there (found by its tag); and when the first
        unfinished post began, if one did."""
        held = self._unrecorded.get(entry.member)
        if held is not None and held.ref is not None:
            return held.ref, None
        record = await self._store.message_record(entry)
        if record.ref is not None or record.posting_since is None:
            return record.ref, None
        if not isinstance(adapter, TaggedPosting):
            return None, record.posting_since
        since = datetime.fromtimestamp(record.posting_since - defaults.POST_LOOKUP_MARGIN_SECONDS, tz=UTC)
        found = await adapter.find_tagged(conversation, tag=tag, since=since)
        if found is not None:
            log.info(
                "alert group %s: a post whose record was lost found in %s",
                entry.item_id,
                found.conversation_id,
            )
        return found, record.posting_since

    def render(
        self,
        state: AlertGroupState,
        *,
        target: RouteTarget,
        adapter: ChatAdapter,
        now: datetime | None = None,
    ) -> OutgoingMessage:
        """The group's message as of `now` (default: the clock's now), its buttons signed then too."""
        moment = now or datetime.fromtimestamp(self._clock(), tz=UTC)

        def sign(action: AlertAction) -> str:
            return sign_button(
                secret=self._secret,
                group_id=state.group_id,
                action=action,
                conversation_key=signing_key(target),
                now=moment.timestamp(),
            )

        return render_group(
            state,
            sign=sign,
            max_bytes=adapter.capabilities.max_message_bytes,
            severity_order=self._settings.severity_order,
            grafana_url=self._settings.grafana_url,
            now=moment,
            runbook=offered_runbook(state, settings=self._settings),
        )

    async def _deliver_notice(self, entry: OutboxEntry) -> None:
        notice = await self._store.load_notice(entry.item_id)
        target = (
            None if notice is None else next((t for t in notice.targets if t.key == entry.target_key), None)
        )
        if notice is None or target is None:
            await self._store.drop(entry)
            return
        adapter = self._adapters.get(target.platform)
        if adapter is None:
            await self._elsewhere(entry, target)
            return
        if entry.member in self._unrecorded:
            await self.record_unrecorded()
            return
        ref: MessageRef = await adapter.send(conversation_of(target), notice.message)
        log.debug("cluster event %s delivered as %s", notice.event, ref.message_id)
        await self._made(Unrecorded(entry=entry, version=1, ref=None))

    async def _elsewhere(self, entry: OutboxEntry, target: RouteTarget) -> None:
        """Hand back an entry for a platform this process does not run: another kobot process sharing the
        store (`kobot serve` beside a terminal `kobot chat`) does. Dropped, with an error, only once no
        process has taken it for PLATFORM_ELSEWHERE_ATTEMPTS_MAX hand-backs."""
        attempts: list[int] = []

        def retry_soon(count: int) -> float:
            attempts.append(count)
            return defaults.PLATFORM_ELSEWHERE_RETRY_SECONDS

        await self._store.postpone(entry, delay_for=retry_soon, now=self._clock())
        if attempts and attempts[0] >= defaults.PLATFORM_ELSEWHERE_ATTEMPTS_MAX:
            log.error(
                "alert target %s: no kobot process runs platform %s; entry dropped",
                entry.target_key,
                target.platform,
            )
            await self._store.drop(entry)
