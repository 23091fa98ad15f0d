"""POST /alerts/alertmanager: authenticate, validate, store, then answer.

Alertmanager retries 5xx and gives up on 4xx, so: a body that can never be right is a 4xx with the
reason; a body that could not be stored is a 503 (Alertmanager sends it again); 200 only once the
group and its outbox entries are in Redis.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from redis.exceptions import RedisError

from alerts import defaults
from alerts.metrics import DropReason
from alerts.models import AlertmanagerWebhook
from alerts.store import AlertStore, IngestResult
from kobot.errors import StoreUnavailableError
from kobot.http_body import read_capped
from kobot.settings_alerts import AlertsSettings

log = logging.getLogger(__name__)

PROBLEMS_SHOWN = 10
"""Validation problems listed in a 422 answer; more would only repeat the same mistake."""


def authorized(settings: AlertsSettings, header: str | None) -> bool:
    """Bearer token or basic auth as Alertmanager's `http_config` sends them, compared in constant time."""
    if not settings.auth_required:
        return True
    if not header:
        return False
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and settings.webhook_bearer_token is not None:
        expected = settings.webhook_bearer_token.get_secret_value().encode()
        return hmac.compare_digest(credentials.encode(), expected)
    if scheme.lower() == "basic" and settings.webhook_username is not None and settings.webhook_password:
        try:
            decoded = base64.b64decode(credentials, validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        user_ok = hmac.compare_digest(user, settings.webhook_username.encode())
        password_ok = hmac.compare_digest(password, settings.webhook_password.get_secret_value().encode())
        return bool(sep) and user_ok and password_ok
    return False


def _problems(exc: ValidationError) -> list[str]:
    shown = []
    for error in exc.errors()[:PROBLEMS_SHOWN]:
        where = ".".join(str(part) for part in error["loc"]) or "body"
        shown.append(f"{where}: {error['msg']}")
    return shown


def _refusal_text(reason: DropReason) -> str:
    if reason is DropReason.GROUP_BYTES_REFUSED:
        limit = defaults.GROUP_BYTES_KEPT_MAX
        return f"the alert groups kept reached their size limit ({limit:,} bytes); this group was not stored"
    return f"{defaults.GROUPS_KEPT_MAX} alert groups are firing; this new one was not stored"


def build_router(
    *,
    settings: AlertsSettings,
    store: AlertStore,
    on_stored: Callable[[IngestResult], Awaitable[None]],
) -> APIRouter:
    router = APIRouter(tags=["alerts"])

    @router.post(defaults.WEBHOOK_PATH)
    async def alertmanager_webhook(request: Request) -> JSONResponse:
        """Alertmanager's webhook receiver (body version 4)."""
        if not authorized(settings, request.headers.get("authorization")):
            return JSONResponse(
                {"error": "authentication required"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="kobot alerts"'},
            )
        raw = await read_capped(request, limit=defaults.WEBHOOK_MAX_BYTES)
        if raw is None:
            return JSONResponse({"error": "body too large"}, status_code=413)
        try:
            body = AlertmanagerWebhook.model_validate_json(raw)
        except ValidationError as exc:
            return JSONResponse(
                {"error": "not an Alertmanager version 4 webhook body", "problems": _problems(exc)},
                status_code=422,
            )
        try:
            result = await store.ingest(body, settings=settings, now=datetime.now(UTC))
        except (RedisError, StoreUnavailableError, OSError) as exc:
            log.error("alert group %s not stored: %s", body.group_id(), type(exc).__name__)
            return JSONResponse(
                {"error": "the alert store is unavailable; retry"},
                status_code=503,
                headers={"Retry-After": str(defaults.WEBHOOK_RETRY_AFTER_SECONDS)},
            )
        if result.refused is not None:
            # 4xx: Alertmanager does not retry it; the group comes again at its next notification.
            return JSONResponse({"error": _refusal_text(result.refused)}, status_code=429)
        await on_stored(result)
        if result.duplicate:
            return JSONResponse({"status": "duplicate", "group": result.group_id})
        if not result.targets:
            log.warning("alert group %s matched no route and there is no default target", result.group_id)
        return JSONResponse({"status": "stored", "group": result.group_id, "targets": len(result.targets)})

    return router
