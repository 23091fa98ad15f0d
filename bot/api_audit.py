"""`GET /api/v1/audit`: the audit trail over HTTP, as JSON or JSON lines, for authorized API users.

Authentication: `Authorization: Bearer <token>`. Tokens are not in settings or code: each API user is
an entry under `api_users:` in the policy file holding only the SHA-256 of its token
(`printf %s "$TOKEN" | sha256sum`), compared in constant time. The caller then is the policy identity
`api:<name>` (joined to a person when the entry names one) and is authorized like a chat user for the
`audit` command on the requested cluster: by default only admins may read the trail.
"""

# No `from __future__ import annotations` here: FastAPI must evaluate the route's annotations, and the
# dependency they name is local to `audit_router`.
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.responses import StreamingResponse

from bot.policy import PolicyStore
from bot.policy import defaults as policy_defaults
from kobot.audit import AUDIT_LIMIT_MAX, AuditEntry, AuditLog, parse_since
from kobot.conversations import Conversation, Identity
from kobot.risk import Risk

API_CONVERSATION = Conversation(platform=policy_defaults.API_PLATFORM, conversation_id="rest")
"""The 'channel' of REST calls, so bindings may be limited to the API with `channels: ["api:*"]`."""

AUDIT_COMMAND = "audit"
JSONL_MEDIA_TYPE = "application/x-ndjson"


ALL_CLUSTERS = "*"
"""What an unfiltered request reads: authorized only by a binding that covers every cluster."""


def bearer_identity(policy: PolicyStore) -> Callable[[str | None], Identity]:
    """A FastAPI dependency: the policy identity of the request's bearer token, or 401."""

    def dependency(authorization: Annotated[str | None, Header()] = None) -> Identity:
        scheme, _, token = (authorization or "").partition(" ")
        identity = policy.api_identity(token=token.strip()) if scheme.lower() == "bearer" and token else None
        if identity is None:
            raise HTTPException(
                status_code=401,
                detail="a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return identity

    return dependency


def audit_router(*, audit: AuditLog, policy: PolicyStore) -> APIRouter:
    """Filters: cluster, since (30m, 2d or ISO), actor, action (globs); format=json (default) or jsonl."""
    router = APIRouter()
    caller = bearer_identity(policy)

    @router.get("/api/v1/audit", response_model=None)
    def read_audit(
        identity: Annotated[Identity, Depends(caller)],
        cluster: str | None = None,
        since: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: Annotated[int, Query(ge=1, le=AUDIT_LIMIT_MAX)] = 100,
        format: Annotated[str, Query(pattern="^(json|jsonl)$")] = "json",
    ) -> list[AuditEntry] | StreamingResponse:
        decision = policy.authorize(
            identity=identity,
            conversation=API_CONVERSATION,
            command_id=AUDIT_COMMAND,
            risk=Risk.READ,
            # no cluster filter means every cluster's entries: only a binding on every cluster may see them
            cluster=cluster or ALL_CLUSTERS,
        )
        if not decision.allowed:
            raise HTTPException(status_code=403, detail=decision.reason)
        start: datetime | None = None
        if since is not None:
            try:
                start = parse_since(since)
            except ValueError as exc:
                raise HTTPException(status_code=422, detail=str(exc)) from None
        if format == "jsonl":
            lines = audit.export_jsonl(cluster=cluster, since=start, actor=actor, action=action)
            return StreamingResponse(lines, media_type=JSONL_MEDIA_TYPE)
        return audit.query(cluster=cluster, since=start, actor=actor, action=action, limit=limit)

    return router
