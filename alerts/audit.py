"""The audit trail of alert actions (silence, ack, runbook) when the alert service runs without kobot's
`AuditLog` (its own tests): the same entry, in the same `kobot:audit` stream, never trimmed."""

from __future__ import annotations

from datetime import UTC, datetime

from redis.asyncio import Redis as AsyncRedis

from kobot.audit import AUDIT_STREAM, AuditEntry
from kobot.conversations import Conversation, Identity


async def record_audit(
    redis: AsyncRedis,
    *,
    who: Identity,
    where: Conversation,
    what: str,
    result: str,
    cluster: str | None = None,
) -> str:
    entry = AuditEntry(
        at=datetime.now(UTC),
        actor=who.key,
        actor_name=who.label(),
        where=where.key,
        action="alert",
        cluster=cluster,
        detail={"what": what},
        result=result,
    )
    entry_id = await redis.xadd(AUDIT_STREAM, {"e": entry.model_dump_json(exclude={"id"})})
    return str(entry_id)
