"""The audit trail: an append-only Redis stream of every command, refusal, approval decision,
break-glass override and job outcome.

Nothing in kobot trims or deletes the stream; it is persisted with the store (AOF). Entries are read
newest first for chat and the REST API, and oldest first for JSON-lines export. Values under keys that
look secret are masked before they are written, so the trail never holds a credential.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from fnmatch import fnmatchcase
from typing import Any, cast

from pydantic import ConfigDict, Field, SecretStr
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.client import Pipeline
from redis.typing import EncodableT, FieldT

from kobot import defaults, keys
from kobot.conversations import Conversation, Identity
from kobot.deferred_models import DeferredModel
from kobot.redis_clients import async_client
from kobot.validation import scrub_surrogates

AUDIT_STREAM = keys.AUDIT_STREAM
"""The one stream every audit entry goes to."""

AUDIT_PAGE = 500
"""Entries read per round trip while filtering."""

AUDIT_SCAN_MAX = 200_000
"""A query looks at no more entries than this, so a filter that matches nothing cannot stall the API."""

AUDIT_WRITE_BATCH_MAX = 500
"""Most entries `append` writes in one round trip; entries that arrive meanwhile go in the next."""

AUDIT_LIMIT_MAX = 1000
"""Most entries one query returns (chat and the REST API); export has no limit."""

MASK = "***"
SECRET_KEY_PATTERN = re.compile(r"pass(word)?|secret|token|kubeconfig|private|credential|api_?key", re.I)
SINCE_PATTERN = re.compile(r"^\s*(\d+)\s*(m|min|h|d|w)\s*$", re.I)
SINCE_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class AuditAction(str, Enum):
    """Action names kobot itself records; plugins may record others."""

    COMMAND = "command"
    REFUSED = "command.refused"
    BREAK_GLASS = "break_glass"
    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_VOTE = "approval.vote"
    APPROVAL_APPROVED = "approval.approved"
    APPROVAL_REJECTED = "approval.rejected"
    APPROVAL_EXPIRED = "approval.expired"
    APPROVAL_REFUSED = "approval.refused"
    JOB_OUTCOME = "job.outcome"
    API_ACCESS = "api.access"


class AuditEntry(DeferredModel):
    """One thing that happened, who did it, where, and how it ended."""

    model_config = ConfigDict(frozen=True)

    id: str = ""
    """The stream id: time-ordered and unique."""
    at: datetime
    actor: str | None = None
    actor_name: str | None = None
    where: str | None = None
    action: str
    cluster: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    result: str

    def line(self) -> str:
        """A one-line rendering for chat."""
        who = self.actor_name or self.actor or "kobot"
        on = f" on {self.cluster}" if self.cluster else ""
        text = self.detail.get("text") or self.detail.get("command") or ""
        suffix = f": {text}" if text else ""
        return f"{self.at:%Y-%m-%d %H:%M:%S} {who} {self.action}{on} → {self.result}{suffix}"


class AuditLog:
    """Appends to and reads the audit stream."""

    def __init__(self, *, redis: Redis, store_url: str) -> None:
        """`redis` writes `record` and reads; `store_url` names the same store for `append`, which writes
        on the event loop's own connection to it (a write and a read on the loop: handing each batch to a
        thread and back cost more than the write itself)."""
        self._redis = redis
        self._store_url = store_url
        # `append`'s entries waiting for the writer, and the writer task, of the loop that made them
        self._waiting: list[tuple[dict[FieldT, EncodableT], asyncio.Future[str]]] = []
        self._writer: asyncio.Task[None] | None = None
        # an asyncio client belongs to the loop it was first used on
        self._loop_client: tuple[asyncio.AbstractEventLoop, AsyncRedis] | None = None

    def record(
        self,
        *,
        who: Identity | None,
        where: Conversation | None,
        action: str,
        cluster: str | None,
        detail: Mapping[str, Any],
        result: str,
    ) -> str:
        """Append one entry and return its id."""
        fields = _entry_fields(
            who=who, where=where, action=action, cluster=cluster, detail=detail, result=result
        )
        entry_id = self._redis.xadd(AUDIT_STREAM, fields)
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def append(
        self,
        *,
        who: Identity | None,
        where: Conversation | None,
        action: str,
        cluster: str | None,
        detail: Mapping[str, Any],
        result: str,
    ) -> str:
        """`record` for the event loop: the write never blocks the loop (it is awaited on the loop's own
        connection), and the entries of every coroutine appending meanwhile go in one round trip. Returns
        once this entry is in the store (its id), so nothing answered before it is written can be lost; a
        store error is raised to the caller as `record` would."""
        fields = _entry_fields(
            who=who, where=where, action=action, cluster=cluster, detail=detail, result=result
        )
        loop = asyncio.get_running_loop()
        written: asyncio.Future[str] = loop.create_future()
        self._waiting.append((fields, written))
        if self._writer is None or self._writer.done() or self._writer.get_loop() is not loop:
            self._writer = loop.create_task(self._write_waiting())
        return await written

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch = self._waiting[:AUDIT_WRITE_BATCH_MAX]
            del self._waiting[:AUDIT_WRITE_BATCH_MAX]
            try:
                ids = await self._write_batch([fields for fields, _ in batch])
            except BaseException as exc:
                for _, written in batch:
                    if not written.done():
                        written.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, written), entry_id in zip(batch, ids, strict=True):
                if not written.done():
                    written.set_result(entry_id)

    async def _write_batch(self, entries: list[dict[FieldT, EncodableT]]) -> list[str]:
        client = self._client_of(asyncio.get_running_loop())
        pipe = client.pipeline(transaction=False)
        for fields in entries:
            pipe.xadd(AUDIT_STREAM, fields)
        return [
            entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            for entry_id in await pipe.execute()
        ]

    def _client_of(self, loop: asyncio.AbstractEventLoop) -> AsyncRedis:
        if self._loop_client is None or self._loop_client[0] is not loop:
            client = async_client(self._store_url, timeout=defaults.REDIS_SOCKET_TIMEOUT_SECONDS)
            self._loop_client = (loop, client)
        return self._loop_client[1]

    async def aclose(self) -> None:
        """Let the entries being written finish, then close the event loop's connection `append` wrote on,
        if any (call it on that loop: an `append` after it opens the connection again, for its loop's own
        `aclose` to close)."""
        loop = asyncio.get_running_loop()
        writer = self._writer
        if writer is not None and not writer.done() and writer.get_loop() is loop:
            # each entry's own append raises its failure; here only the end of the writing matters
            await asyncio.gather(writer, return_exceptions=True)
        loop_client, self._loop_client = self._loop_client, None
        if loop_client is not None and loop_client[0] is loop:
            await loop_client[1].aclose()

    @staticmethod
    def queue_record(
        pipe: Pipeline,
        *,
        who: Identity | None,
        where: Conversation | None,
        action: str,
        cluster: str | None,
        detail: Mapping[str, Any],
        result: str,
    ) -> None:
        """Add the append of `record` to a caller's transaction, so the entry lands exactly when what it
        records does (a job's final state and its outcome entry: both or neither)."""
        pipe.xadd(
            AUDIT_STREAM,
            _entry_fields(who=who, where=where, action=action, cluster=cluster, detail=detail, result=result),
        )

    def query(
        self,
        *,
        cluster: str | None = None,
        since: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Matching entries, newest first. `cluster`, `actor` and `action` accept globs (`prod-*`)."""
        limit = max(1, min(limit, AUDIT_LIMIT_MAX))
        found: list[AuditEntry] = []
        for entry in self._scan(reverse=True, since=since):
            if _matches(entry, cluster=cluster, actor=actor, action=action):
                found.append(entry)
                if len(found) >= limit:
                    break
        return found

    def export_jsonl(
        self,
        *,
        cluster: str | None = None,
        since: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
    ) -> Iterator[str]:
        """Every matching entry, oldest first, one JSON object per line (newline included)."""
        for entry in self._scan(reverse=False, since=since):
            if _matches(entry, cluster=cluster, actor=actor, action=action):
                yield entry.model_dump_json() + "\n"

    def _scan(self, *, reverse: bool, since: datetime | None) -> Iterator[AuditEntry]:
        low = f"{int(since.timestamp() * 1000)}-0" if since is not None else "-"
        high = "+"
        seen = 0
        while seen < AUDIT_SCAN_MAX:
            if reverse:
                raw = self._redis.xrevrange(AUDIT_STREAM, max=high, min=low, count=AUDIT_PAGE)
            else:
                raw = self._redis.xrange(AUDIT_STREAM, min=low, max=high, count=AUDIT_PAGE)
            page = cast(list[tuple[bytes, dict[bytes, bytes]]], raw)
            if not page:
                return
            for raw_id, fields in page:
                seen += 1
                entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                yield AuditEntry.model_validate_json(fields[b"e"]).model_copy(update={"id": entry_id})
            last = page[-1][0]
            last_id = last.decode() if isinstance(last, bytes) else str(last)
            if reverse:
                high = f"({last_id}"
            else:
                low = f"({last_id}"
            if len(page) < AUDIT_PAGE:
                return


def _entry_fields(
    *,
    who: Identity | None,
    where: Conversation | None,
    action: str,
    cluster: str | None,
    detail: Mapping[str, Any],
    result: str,
) -> dict[FieldT, EncodableT]:
    # Lone surrogates (a JSON escape in a chat payload) cannot be encoded as UTF-8: they are dropped
    # here, so no entry fails to be written for what a user's client sent.
    entry = AuditEntry.model_validate(
        scrub_surrogates(
            {
                "at": datetime.now(UTC),
                "actor": who.key if who is not None else None,
                "actor_name": who.label() if who is not None else None,
                "where": where.key if where is not None else None,
                "action": action,
                "cluster": cluster,
                "detail": mask_secrets(detail),
                "result": result,
            }
        )
    )
    return {"e": entry.model_dump_json(exclude={"id"})}


def _matches(entry: AuditEntry, *, cluster: str | None, actor: str | None, action: str | None) -> bool:
    if cluster is not None and not fnmatchcase(entry.cluster or "", cluster):
        return False
    if actor is not None and not fnmatchcase((entry.actor or "").lower(), actor.lower()):
        return False
    return action is None or fnmatchcase(entry.action, action)


def mask_secrets(value: Any, *, key: str = "") -> Any:
    """A copy of `value` with anything under a secret-looking key, or any SecretStr, masked."""
    if isinstance(value, SecretStr) or (key and SECRET_KEY_PATTERN.search(key) and value not in (None, "")):
        return MASK
    if isinstance(value, Mapping):
        return {str(k): mask_secrets(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_secrets(item) for item in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return json.loads(json.dumps(value, default=str))


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """`30m`, `1h`, `2d`, `1w`, or an ISO date/time (UTC unless it says otherwise)."""
    now = now or datetime.now(UTC)
    match = SINCE_PATTERN.match(text)
    if match:
        return now - timedelta(**{SINCE_UNITS[match.group(2).lower()]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use 30m, 1h, 2d, 1w or a date like 2025-01-31") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
