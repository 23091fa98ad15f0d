"""HTTP callbacks WeCom calls: `/wecom/callback` (self-built app) and `/wecom/smartbot` (smart bot).

Each answers within WeCom's 5 s with an empty body (no passive reply) once the request is verified;
the event itself is handled in a background task by the adapter.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import xmltodict  # type: ignore[import-untyped]
from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from bot.chat.wecom.callback import CallbackGuard, CallbackRefused
from kobot.http_body import read_capped

log = logging.getLogger(__name__)

CALLBACK_PATH = "/wecom/callback"
SMART_BOT_PATH = "/wecom/smartbot"
BODY_MAX_BYTES = 64 * 1024
"""No WeCom callback is near this size; a larger body is refused before parsing."""

PlainHandler = Callable[[str], None]
"""Receives the decrypted plaintext and schedules the work; must return at once."""


def build_router(
    *,
    app_guard: CallbackGuard,
    on_app_plaintext: PlainHandler,
    smart_bot_guard: CallbackGuard | None,
    on_smart_bot_plaintext: PlainHandler,
) -> APIRouter:
    router = APIRouter()

    @router.get(CALLBACK_PATH)
    async def app_url_check(request: Request) -> Response:
        return _echo(app_guard, request)

    @router.post(CALLBACK_PATH)
    async def app_callback(request: Request) -> Response:
        try:
            encrypted = _xml_encrypt(await _body(request))
            plain = app_guard.open(encrypted=encrypted, **_signed_query(request))
        except CallbackRefused as refused:
            return _refuse(refused, CALLBACK_PATH)
        on_app_plaintext(plain)
        return Response(status_code=200)

    if smart_bot_guard is not None:
        guard = smart_bot_guard

        @router.get(SMART_BOT_PATH)
        async def smart_bot_url_check(request: Request) -> Response:
            return _echo(guard, request)

        @router.post(SMART_BOT_PATH)
        async def smart_bot_callback(request: Request) -> Response:
            try:
                encrypted = _json_encrypt(await _body(request))
                plain = guard.open(encrypted=encrypted, **_signed_query(request))
            except CallbackRefused as refused:
                return _refuse(refused, SMART_BOT_PATH)
            on_smart_bot_plaintext(plain)
            return Response(status_code=200)

    return router


def _echo(guard: CallbackGuard, request: Request) -> Response:
    echostr = request.query_params.get("echostr", "")
    try:
        if not echostr:
            raise CallbackRefused(400, "echostr missing")
        plain = guard.echo(echostr=echostr, **_signed_query(request))
    except CallbackRefused as refused:
        return _refuse(refused, request.url.path)
    return PlainTextResponse(plain)


def _signed_query(request: Request) -> dict[str, str]:
    query = request.query_params
    values = {name: query.get(name, "") for name in ("msg_signature", "timestamp", "nonce")}
    if not all(values.values()):
        raise CallbackRefused(400, "msg_signature, timestamp and nonce are required")
    return {"signature": values["msg_signature"], "timestamp": values["timestamp"], "nonce": values["nonce"]}


async def _body(request: Request) -> bytes:
    body = await read_capped(request, limit=BODY_MAX_BYTES)
    if body is None:
        raise CallbackRefused(413, "body too large")
    return body


def _xml_encrypt(body: bytes) -> str:
    try:
        parsed: Any = xmltodict.parse(body, disable_entities=True)
        encrypt = parsed["xml"]["Encrypt"]
    except Exception:
        raise CallbackRefused(400, "body is not WeCom callback XML") from None
    if not isinstance(encrypt, str) or not encrypt:
        raise CallbackRefused(400, "Encrypt is empty")
    return encrypt


def _json_encrypt(body: bytes) -> str:
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        raise CallbackRefused(400, "body is not JSON") from None
    encrypt = parsed.get("encrypt") if isinstance(parsed, dict) else None
    if not isinstance(encrypt, str) or not encrypt:
        raise CallbackRefused(400, "encrypt is missing")
    return encrypt


def _refuse(refused: CallbackRefused, path: str) -> Response:
    log.warning("wecom callback %s refused: %s", path, refused.reason)
    return PlainTextResponse(refused.reason, status_code=refused.status)
