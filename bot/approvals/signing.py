"""Signed approval button payloads: `<request id>.<decision>.<expiry>.<signature>`.

The signature is HMAC-SHA256, under a key derived from kobot's secret for approvals only, over the
request id, the decision, the plan hash and the expiry. The plan hash is not in the payload: it is
taken from the stored request, so a request whose plan changed no longer matches its buttons.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from bot.approvals.models import ApprovalDecision

KEY_PURPOSE = b"kobot approval buttons v1"
"""Domain separation: a signature made for another kind of button never verifies here."""


@dataclass(frozen=True)
class ButtonPayload:
    request_id: str
    decision: ApprovalDecision
    expires: int
    signature: str


def derive_key(secret: bytes) -> bytes:
    return hmac.new(secret, KEY_PURPOSE, hashlib.sha256).digest()


def sign(*, key: bytes, request_id: str, decision: ApprovalDecision, plan_hash: str, expires: int) -> str:
    message = "\0".join((request_id, decision.value, plan_hash, str(expires))).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def encode(*, key: bytes, request_id: str, decision: ApprovalDecision, plan_hash: str, expires: int) -> str:
    signature = sign(key=key, request_id=request_id, decision=decision, plan_hash=plan_hash, expires=expires)
    return f"{request_id}.{decision.value}.{expires}.{signature}"


def decode(value: str) -> ButtonPayload | None:
    """Split a payload; None when it is not one of ours (the signature is checked by `verify`)."""
    parts = value.split(".")
    if len(parts) != 4 or not parts[0].isdigit() or not parts[2].isdigit() or len(parts[3]) != 64:
        return None
    try:
        decision = ApprovalDecision(parts[1])
    except ValueError:
        return None
    return ButtonPayload(request_id=parts[0], decision=decision, expires=int(parts[2]), signature=parts[3])


def verify(*, key: bytes, payload: ButtonPayload, plan_hash: str, expires: int) -> bool:
    expected = sign(
        key=key,
        request_id=payload.request_id,
        decision=payload.decision,
        plan_hash=plan_hash,
        expires=expires,
    )
    return hmac.compare_digest(expected, payload.signature) and payload.expires == expires
