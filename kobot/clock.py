"""The one clock every record is stamped with: aware datetimes in UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, in UTC, with its timezone: stored records compare and serialize without guessing."""
    return datetime.now(UTC)
