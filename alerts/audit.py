"""The audit trail of alert actions (silence, ack, runbook): who, where, when, what, result.

Written to the shared `kobot:audit` stream with the same fields `bot.audit` uses.
"""

from __future__ import annotations

from datetime import UTC, datetime

from redis.asyncio import Redis as AsyncRedis

from alerts import defaults
from bot.chat.types import Conversation, Identity


async def record_audit(
    redis: AsyncRedis,
    *,
    who: Identity,
    where: Conversation,
    what: str,
    result: str,
) -> str:
    entry_id = await redis.xadd(
        defaults.AUDIT_STREAM,
        {
            "who": who.key,
            "who_name": who.label(),
            "where": where.key,
            "when": datetime.now(UTC).isoformat(),
            "what": what,
            "result": result,
        },
        maxlen=defaults.AUDIT_STREAM_MAX,
        approximate=True,
    )
    return str(entry_id)
