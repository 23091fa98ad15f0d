"""Signed Cancel buttons on job progress messages: `<job id>.<signature>`.

The signature is HMAC-SHA256, under a key derived from kobot's secret for job buttons only (a payload
signed for an approval button never verifies here, nor the other way round), over the job id, the time
the job was created and the conversation it reports to. Those two are not in the payload: they are taken
from the stored job, so a button only ever names the job it was issued for, and a job that reuses an id
(a store wiped and started again) does not honour the buttons of the old one.
"""

from __future__ import annotations

import hashlib
import hmac

from kobot.job_records import JobRecord

KEY_PURPOSE = b"kobot job cancel buttons v1"
"""Domain separation from every other use of kobot's secret."""

SIGNATURE_HEX_CHARS = 64
"""Length of a hex HMAC-SHA256 digest, the signature part of a payload."""


def derive_key(secret: bytes) -> bytes:
    return hmac.new(secret, KEY_PURPOSE, hashlib.sha256).digest()


def _signature(*, key: bytes, record: JobRecord) -> str:
    spec = record.spec
    message = "\0".join(("cancel", spec.job_id, spec.created_at.isoformat(), spec.reply_to.key)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def cancel_value(*, key: bytes, record: JobRecord) -> str:
    """The payload of the Cancel button on `record`'s progress message."""
    return f"{record.job_id}.{_signature(key=key, record=record)}"


def job_of(value: str) -> str | None:
    """The job a payload names; None when it is not one of ours (the signature is checked by `verify`)."""
    job_id, dot, signature = value.partition(".")
    if not dot or not job_id.isdigit() or len(signature) != SIGNATURE_HEX_CHARS:
        return None
    return job_id


def verify(*, key: bytes, value: str, record: JobRecord) -> bool:
    """Whether `value` is the Cancel payload kobot issued for exactly this job."""
    return hmac.compare_digest(cancel_value(key=key, record=record).encode(), value.encode())
