"""Alert state in Redis: groups, the outbox the delivery loop drains, message refs and subscriptions.

A webhook's group is merged and written in one optimistic transaction together with its outbox
entries, so once the receiver answers 2xx the delivery is already scheduled: a crash before the chat
send resumes on start. The outbox holds one entry per (group, conversation); a group that changes
again before its entry is delivered needs no second entry (the latest state wins).

A process takes due entries under a claim that names it (keys.CLAIMS) and lasts as long as the
delivery may (its timeout plus a margin); every process beats a heartbeat (keys.OWNERS), and the claims
of one that fell silent (kill -9, a lost host) are due again at once, so they come back within
OWNER_DEAD_AFTER_SECONDS instead of a full claim later. An update that arrives while its entry is
claimed keeps the claim (`ZADD NX`); the delivery's end sees the newer version and schedules it.
"""

from __future__ import annotations

import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError, WatchError

from alerts import defaults, keys
from alerts.metrics import DropReason, count_dropped
from alerts.models import AlertGroupState, AlertmanagerWebhook, AlertStatus, Notice, webhook_digest
from alerts.retention import merge_state
from alerts.routing import Subscription, route_group
from kobot.conversations import MessageRef
from kobot.errors import StoreUnavailableError
from kobot.redis_clients import async_client
from kobot.settings_alerts import AlertsSettings, RouteTarget

log = logging.getLogger(__name__)

T = TypeVar("T")


async def result(value: Awaitable[T] | T) -> T:
    """redis-py types every command as `Awaitable[T] | T`; the asyncio client always returns the awaitable."""
    if inspect.isawaitable(value):
        return await value
    return value


SHOWN_AT = "@at"
"""Suffix of the delivered-hash field holding when a conversation last got the group."""

POSTING_AT = "@posting"
"""Suffix of the refs-hash field holding when a post began whose ref is not recorded yet."""

WATCH_RETRIES = 20
"""Concurrent writers of one group retry their transaction this often before giving up (5xx)."""

_FINISH = """
local current = redis.call('HGET', KEYS[1], 'version')
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
if current and tonumber(current) > tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  return 1
end
redis.call('ZREM', KEYS[2], ARGV[1])
return 0
"""
"""Ends one delivery: drop the outbox entry, unless the item changed meanwhile (then it comes due again)."""


_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], member)
  redis.call('HSET', KEYS[2], member, ARGV[4])
end
return due
"""
"""Takes the due entries for one process and names it their owner, in one step."""

_RELEASE_DEAD = """
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
local freed = {}
local claims = redis.call('HGETALL', KEYS[2])
for i = 1, #claims, 2 do
  local member, owner = claims[i], claims[i + 1]
  local seen = redis.call('ZSCORE', KEYS[3], owner)
  if (not seen) or tonumber(seen) < tonumber(ARGV[2]) then
    redis.call('ZADD', KEYS[1], 'XX', 'LT', ARGV[1], member)
    redis.call('HDEL', KEYS[2], member)
    table.insert(freed, member)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[2])
return freed
"""
"""Beats this process's heartbeat (ARGV[3], ARGV[4]) and makes the entries claimed by a process silent
since before ARGV[2] due now (ARGV[1]); returns them."""

_RELEASE_OWN = """
local claims = redis.call('HGETALL', KEYS[2])
for i = 1, #claims, 2 do
  if claims[i + 1] == ARGV[2] then
    redis.call('ZADD', KEYS[1], 'XX', 'LT', ARGV[1], claims[i])
    redis.call('HDEL', KEYS[2], claims[i])
  end
end
redis.call('ZREM', KEYS[3], ARGV[2])
return 0
"""
"""A stopping process hands its claims back (due at ARGV[1]) and leaves the heartbeat set."""


_FORGET = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('HDEL', KEYS[5], ARGV[1])
return 1
"""
"""Forgets a resolved group only while it is still resolved: one that fired again meanwhile is kept."""


@dataclass(frozen=True)
class IngestResult:
    group_id: str
    duplicate: bool
    targets: tuple[RouteTarget, ...] = ()
    refused: DropReason | None = None
    """Why the state was not stored: GROUPS_KEPT_MAX groups are firing, or GROUP_BYTES_KEPT_MAX is reached."""


@dataclass(frozen=True)
class OutboxEntry:
    member: str
    kind: str
    """"g" for an alert group, "n" for a cluster event notice."""
    item_id: str
    target_key: str

    @classmethod
    def parse(cls, member: str) -> OutboxEntry:
        item, _, target_key = member.partition("|")
        kind, _, item_id = item.partition(":")
        return cls(member=member, kind=kind, item_id=item_id, target_key=target_key)

    @property
    def item_key(self) -> str:
        return keys.group(self.item_id) if self.kind == "g" else keys.notice(self.item_id)


def outbox_member(*, kind: str, item_id: str, target: RouteTarget) -> str:
    return f"{kind}:{item_id}|{target.key}"


@dataclass(frozen=True)
class MessageRecord:
    """What the store knows of a group's message in one conversation."""

    ref: MessageRef | None
    posting_since: float | None
    """When a post began whose ref was never recorded (unix seconds): it may have reached the platform."""


def open_alert_store(store_url: str) -> AlertStore:
    """An alert store on its own async client for `store_url` (connecting at its first command)."""
    redis = async_client(store_url, timeout=defaults.REDIS_SOCKET_TIMEOUT_SECONDS, decode_responses=True)
    return AlertStore(redis=redis)


class AlertStore:
    """Async access to the alert keys (the receiver and the delivery loop share one event loop).

    `owner` names this process on the claims it takes (a fresh id per store unless given)."""

    def __init__(self, *, redis: AsyncRedis, owner: str | None = None) -> None:
        self.redis = redis
        self.owner = owner or uuid.uuid4().hex
        self._finish = redis.register_script(_FINISH)
        self._claim = redis.register_script(_CLAIM)
        self._release_dead = redis.register_script(_RELEASE_DEAD)
        self._release_own = redis.register_script(_RELEASE_OWN)
        self._forget_script = redis.register_script(_FORGET)
        self._waitaof: bool | None = None

    async def ping(self) -> None:
        """Ask the store for an answer (RedisError when there is none): kobot serve's health probe."""
        await result(self.redis.ping())

    async def subscriptions(self) -> list[Subscription]:
        raw = await result(self.redis.hgetall(keys.SUBSCRIPTIONS))
        return [Subscription.model_validate_json(value) for value in raw.values()]

    async def ingest(
        self,
        body: AlertmanagerWebhook,
        *,
        settings: AlertsSettings,
        now: datetime,
    ) -> IngestResult:
        """Store the group and schedule its delivery, or say it is a duplicate of what is stored."""
        group_id = body.group_id()
        key = keys.group(group_id)
        digest = webhook_digest(body)
        subscriptions = await self.subscriptions()
        labels = [alert.labels for alert in body.alerts if alert.status is AlertStatus.FIRING] or [
            alert.labels for alert in body.alerts
        ]
        routed = route_group(settings=settings, subscriptions=subscriptions, alert_labels=labels, now=now)
        for _ in range(WATCH_RETRIES):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await result(pipe.hget(key, "state"))
                    previous = AlertGroupState.model_validate_json(raw) if raw else None
                    if previous is not None and previous.digest == digest:
                        return IngestResult(group_id=group_id, duplicate=True)
                    state, restarted = merge_state(previous, body, digest=digest, targets=routed, now=now)
                    state_json = state.model_dump_json()
                    refused = await self._make_room(
                        state, size=len(state_json.encode()), new=previous is None, now=now.timestamp()
                    )
                    if refused is not None:
                        return IngestResult(group_id=group_id, duplicate=False, refused=refused)
                    shown_at = {} if restarted else await self._shown_at(pipe, group_id)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    if restarted:
                        pipe.delete(keys.group_refs(group_id), keys.group_delivered(group_id))
                    self._write_group(
                        pipe, state, now=now.timestamp(), shown_at=shown_at, state_json=state_json
                    )
                    await pipe.execute()
                except WatchError:
                    continue
            await self._persist()
            return IngestResult(group_id=group_id, duplicate=False, targets=tuple(state.targets))
        raise StoreUnavailableError("the alert store is too busy; try again")

    async def _make_room(
        self, state: AlertGroupState, *, size: int, new: bool, now: float
    ) -> DropReason | None:
        """Room for `state` (`size` bytes) under GROUPS_KEPT_MAX and GROUP_BYTES_KEPT_MAX: forget expired ids,
        then the oldest resolved groups; the reason it is refused when that is not enough. Only a new group
        or a firing one that grows is refused: a resolve or a shrink always lands, or a message would show
        an alert that is gone."""
        await self._forget_expired(now=now)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.GROUPS_FIRING)
            pipe.zcard(keys.GROUPS_RESOLVED)
            pipe.hgetall(keys.GROUP_BYTES)
            firing, resolved, raw_sizes = await pipe.execute()
        sizes = {group_id: int(value) for group_id, value in raw_sizes.items()}
        before = sizes.get(state.group_id, 0)
        groups_over = int(firing) + int(resolved) - defaults.GROUPS_KEPT_MAX + 1 if new else 0
        bytes_over = sum(sizes.values()) - before + size - defaults.GROUP_BYTES_KEPT_MAX
        if groups_over > 0 or bytes_over > 0:
            oldest_first: list[str] = await result(self.redis.zrange(keys.GROUPS_RESOLVED, 0, -1))
            for group_id in oldest_first:
                if groups_over <= 0 and bytes_over <= 0:
                    break
                if group_id != state.group_id and await self._forget(group_id):
                    groups_over -= 1
                    bytes_over -= sizes.get(group_id, 0)
        if groups_over > 0:
            count_dropped(DropReason.GROUP_REFUSED)
            log.warning(
                "new alert group refused: %d groups are firing (GROUPS_KEPT_MAX %d)",
                int(firing),
                defaults.GROUPS_KEPT_MAX,
            )
            return DropReason.GROUP_REFUSED
        grows = new or (size > before and state.status is AlertStatus.FIRING)
        if bytes_over > 0 and grows:
            count_dropped(DropReason.GROUP_BYTES_REFUSED)
            log.warning(
                "alert group %s refused: the groups kept would pass GROUP_BYTES_KEPT_MAX (%d) by %d bytes",
                state.group_id,
                defaults.GROUP_BYTES_KEPT_MAX,
                bytes_over,
            )
            return DropReason.GROUP_BYTES_REFUSED
        return None

    async def _forget_expired(self, *, now: float) -> None:
        """Drop the ids (and sizes) of groups whose keys expired after GROUP_TTL_SECONDS without an update."""
        expired = now - defaults.GROUP_TTL_SECONDS
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in (keys.GROUPS_FIRING, keys.GROUPS_RESOLVED):
                pipe.zrangebyscore(name, "-inf", expired)
            gone = [group_id for ids in await pipe.execute() for group_id in ids]
        if gone:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(keys.GROUPS_FIRING, *gone)
                pipe.zrem(keys.GROUPS_RESOLVED, *gone)
                pipe.hdel(keys.GROUP_BYTES, *gone)
                await pipe.execute()

    async def _forget(self, group_id: str) -> bool:
        """Forget a resolved group to make room; False when another process forgot it first."""
        names = [keys.group(group_id), keys.group_refs(group_id), keys.group_delivered(group_id)]
        if not await self._forget_script(
            keys=[keys.GROUPS_RESOLVED, *names, keys.GROUP_BYTES], args=[group_id]
        ):
            return False
        count_dropped(DropReason.RESOLVED_GROUP_EVICTED)
        log.info("alert group %s forgotten to stay within the groups' limits (it had resolved)", group_id)
        return True

    @staticmethod
    async def _shown_at(pipe: Pipeline, group_id: str) -> dict[str, float]:
        """When each conversation last got the group; its next edit waits EDIT_INTERVAL_SECONDS from then."""
        raw: dict[str, str] = await result(pipe.hgetall(keys.group_delivered(group_id)))
        return {k.removesuffix(SHOWN_AT): float(v) for k, v in raw.items() if k.endswith(SHOWN_AT)}

    def _write_group(
        self,
        pipe: Pipeline,
        state: AlertGroupState,
        *,
        now: float,
        shown_at: dict[str, float],
        state_json: str | None = None,
    ) -> None:
        key = keys.group(state.group_id)
        state_json = state.model_dump_json() if state_json is None else state_json
        pipe.hset(key, "state", state_json)
        pipe.hset(keys.GROUP_BYTES, state.group_id, str(len(state_json.encode())))
        pipe.hincrby(key, "version", 1)
        for name in (key, keys.group_refs(state.group_id), keys.group_delivered(state.group_id)):
            pipe.expire(name, defaults.GROUP_TTL_SECONDS)
        resolved = state.status is AlertStatus.RESOLVED
        kept_in, not_in = (
            (keys.GROUPS_RESOLVED, keys.GROUPS_FIRING)
            if resolved
            else (keys.GROUPS_FIRING, keys.GROUPS_RESOLVED)
        )
        pipe.zadd(kept_in, {state.group_id: now})
        pipe.zrem(not_in, state.group_id)
        for target in state.targets:
            due = max(now, shown_at.get(target.key, 0.0) + defaults.EDIT_INTERVAL_SECONDS)
            member = outbox_member(kind="g", item_id=state.group_id, target=target)
            pipe.zadd(keys.OUTBOX, {member: due}, nx=True)

    async def update_group(
        self,
        group_id: str,
        change: Callable[[AlertGroupState], AlertGroupState],
        *,
        now: datetime,
    ) -> AlertGroupState:
        """Apply `change` to a stored group and schedule the new state to every conversation showing it."""
        key = keys.group(group_id)
        for _ in range(WATCH_RETRIES):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await result(pipe.hget(key, "state"))
                    if raw is None:
                        raise LookupError(group_id)
                    state = change(AlertGroupState.model_validate_json(raw))
                    shown_at = await self._shown_at(pipe, group_id)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    self._write_group(pipe, state, now=now.timestamp(), shown_at=shown_at)
                    await pipe.execute()
                except WatchError:
                    continue
            await self._persist()
            return state
        raise StoreUnavailableError("the alert store is too busy; try again")

    async def load_group(self, group_id: str) -> tuple[AlertGroupState, int] | None:
        raw, version = await result(self.redis.hmget(keys.group(group_id), ["state", "version"]))
        if raw is None:
            return None
        return AlertGroupState.model_validate_json(raw), int(version or 0)

    async def add_notice(self, notice: Notice, *, due: float) -> None:
        key = keys.notice(notice.notice_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"state": notice.model_dump_json(), "version": "1"})
            pipe.expire(key, defaults.GROUP_TTL_SECONDS)
            for target in notice.targets:
                pipe.zadd(
                    keys.OUTBOX, {outbox_member(kind="n", item_id=notice.notice_id, target=target): due}
                )
            await pipe.execute()
        await self._persist()

    async def load_notice(self, notice_id: str) -> Notice | None:
        raw = await result(self.redis.hget(keys.notice(notice_id), "state"))
        return None if raw is None else Notice.model_validate_json(raw)

    async def due(
        self, *, now: float, claim_seconds: float, limit: int = defaults.DELIVERY_BATCH
    ) -> list[OutboxEntry]:
        """Entries due now, claimed for this process: hidden from the others for `claim_seconds` (the
        longest their delivery may take) or until this process is found dead, whichever comes first."""
        members = await self._claim(
            keys=[keys.OUTBOX, keys.CLAIMS], args=[now, limit, now + claim_seconds, self.owner]
        )
        return [OutboxEntry.parse(member) for member in members]

    async def heartbeat(self, *, now: float) -> list[str]:
        """Say this process is alive, and make the claims of processes silent for OWNER_DEAD_AFTER_SECONDS
        due at once; returns the outbox members freed."""
        freed: list[str] = await self._release_dead(
            keys=[keys.OUTBOX, keys.CLAIMS, keys.OWNERS],
            args=[now, now - defaults.OWNER_DEAD_AFTER_SECONDS, now, self.owner],
        )
        if freed:
            log.warning("%d alert deliveries of a stopped kobot process taken back", len(freed))
        return freed

    async def release_claims(self, *, now: float) -> None:
        """Hand this process's claims back (due at `now`) as it stops, so the next one needs no wait."""
        await self._release_own(keys=[keys.OUTBOX, keys.CLAIMS, keys.OWNERS], args=[now, self.owner])

    async def message_record(self, entry: OutboxEntry) -> MessageRecord:
        raw, posting = await result(
            self.redis.hmget(
                keys.group_refs(entry.item_id), [entry.target_key, entry.target_key + POSTING_AT]
            )
        )
        return MessageRecord(
            ref=None if raw is None else MessageRef.model_validate_json(raw),
            posting_since=None if posting is None else float(posting),
        )

    async def mark_posting(self, entry: OutboxEntry, *, now: float) -> None:
        """Note that a post begins, before it is sent: if its ref is never recorded, the next attempt
        looks for the message first. The earliest attempt's time is kept."""
        name = keys.group_refs(entry.item_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(name, entry.target_key + POSTING_AT, repr(now))
            pipe.expire(name, defaults.GROUP_TTL_SECONDS)
            await pipe.execute()

    async def finish(
        self, entry: OutboxEntry, *, version: int, ref: MessageRef | None, next_due: float
    ) -> None:
        """Record a successful delivery of `version` (and the message it lives in)."""
        if ref is not None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(keys.group_refs(entry.item_id), entry.target_key, ref.model_dump_json())
                pipe.hdel(keys.group_refs(entry.item_id), entry.target_key + POSTING_AT)
                pipe.hset(
                    keys.group_delivered(entry.item_id),
                    mapping={entry.target_key: str(version), entry.target_key + SHOWN_AT: str(time.time())},
                )
                pipe.expire(keys.group_refs(entry.item_id), defaults.GROUP_TTL_SECONDS)
                pipe.expire(keys.group_delivered(entry.item_id), defaults.GROUP_TTL_SECONDS)
                await pipe.execute()
        await self._finish(
            keys=[entry.item_key, keys.OUTBOX, keys.ATTEMPTS, keys.CLAIMS],
            args=[entry.member, version, next_due],
        )

    async def drop(self, entry: OutboxEntry) -> None:
        """Forget an entry that can never be delivered (its item expired, its platform is not configured)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.OUTBOX, entry.member)
            pipe.hdel(keys.ATTEMPTS, entry.member)
            pipe.hdel(keys.CLAIMS, entry.member)
            await pipe.execute()

    async def postpone(self, entry: OutboxEntry, *, delay_for: Callable[[int], float], now: float) -> float:
        """Count a failed attempt and move the entry to when it should be tried again; returns the delay."""
        attempts = int(await result(self.redis.hincrby(keys.ATTEMPTS, entry.member, 1)))
        delay = delay_for(attempts)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(keys.OUTBOX, {entry.member: now + delay}, xx=True)
            pipe.hdel(keys.CLAIMS, entry.member)
            await pipe.execute()
        return delay

    async def outbox_size(self) -> int:
        return int(await result(self.redis.zcard(keys.OUTBOX)))

    async def _persist(self) -> None:
        """Wait until the write is in the append-only file where the server supports it (WAITAOF)."""
        if self._waitaof is False:
            return
        try:
            await self.redis.execute_command("WAITAOF", 1, 0, 1000)  # type: ignore[no-untyped-call]
            self._waitaof = True
        except ResponseError as exc:
            log.info("alert writes not fsync-confirmed (%s)", exc)
            self._waitaof = False
