"""A local Slack: the Web API, Socket Mode and signed event delivery, over real loopback sockets.

The peer runs an aiohttp server on 127.0.0.1 in its own thread and event loop, so the code under
test (slack-sdk, Bolt) talks to it exactly as it would to slack.com: only the base URL differs.
It answers the Web API methods kobot uses the way Slack does (HTTP 200 with `ok: false` for API
errors, 429 with Retry-After for rate limits), keeps the messages it was sent and their edits,
checks Block Kit limits Slack enforces, records every request, and injects faults on demand.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.peers.slack_events import (
    block_actions,
    event_callback,
    eventually,
    form_body,
    im_event,
    interactive_body,
    mention_event,
    signed_headers,
    slash_command,
)

__all__ = [
    "ApiCall",
    "PeerMessage",
    "SlackPeer",
    "block_actions",
    "event_callback",
    "eventually",
    "form_body",
    "im_event",
    "interactive_body",
    "mention_event",
    "signed_headers",
    "slash_command",
]

PEER_TIMEOUT_SECONDS = 10.0
"""Longest the peer waits for its own start, a socket ack or a test condition."""

DEFAULT_USERS: dict[str, dict[str, Any]] = {
    "U0ALICE": {
        "name": "alice",
        "real_name": "Alice Liddell",
        "display_name": "Alice",
        "email": "alice@example.org",
    },
    "U0BOB": {"name": "bob", "real_name": "Bob Stone", "display_name": "", "email": "bob@example.org"},
}


@dataclass
class ApiCall:
    """One Web API request as the peer saw it, and what it answered."""

    method: str
    body: dict[str, Any]
    authorization: str
    status: int
    error: str | None
    at: float


@dataclass
class PeerMessage:
    """A message kobot posted; `edits` holds every chat.update body in order."""

    channel: str
    ts: str
    thread_ts: str | None
    text: str
    blocks: list[dict[str, Any]]
    edits: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Faults:
    rate_limited_until: float = 0.0
    retry_after: int = 1
    fail_next: int = 0
    fail_status: int = 500
    delay: float = 0.0
    token_expired: bool = False


class SlackPeer:
    """Slack's Web API and Socket Mode on a loopback port. Use as a context manager."""

    def __init__(
        self,
        *,
        bot_token: str,
        app_token: str | None = None,
        users: dict[str, dict[str, Any]] | None = None,
        team_id: str = "T0KOBOT",
        bot_user_id: str = "U0KOBOT",
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.port = 0
        self.calls: list[ApiCall] = []
        self.messages: dict[tuple[str, str], PeerMessage] = {}
        self.acks: dict[str, dict[str, Any]] = {}
        self.socket_connections = 0
        self.missing_channels: set[str] = {"C0GONE"}
        self.faults = _Faults()
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._ack_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> SlackPeer:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._serve())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="slack-peer", daemon=True)
        self._thread.start()
        if not ready.wait(PEER_TIMEOUT_SECONDS):
            raise RuntimeError("slack peer did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(PEER_TIMEOUT_SECONDS)
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join(PEER_TIMEOUT_SECONDS)
        loop.close()
        self._loop = None

    def __enter__(self) -> SlackPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    async def _serve(self) -> None:
        app = web.Application(client_max_size=2_000_000)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_get("/link/", self._link)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _shutdown(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- fault injection ---------------------------------------------------------------------------

    def rate_limit(self, *, seconds: float, retry_after: int = 1) -> None:
        """Answer every Web API call with 429 + Retry-After for the next `seconds`."""
        with self._lock:
            self.faults.rate_limited_until = time.monotonic() + seconds
            self.faults.retry_after = retry_after

    def fail_next(self, count: int, *, status: int = 500) -> None:
        """Answer the next `count` calls with a bare HTTP error, as a broken edge would."""
        with self._lock:
            self.faults.fail_next = count
            self.faults.fail_status = status

    def slow(self, seconds: float) -> None:
        """Delay every answer by `seconds`."""
        with self._lock:
            self.faults.delay = seconds

    def expire_token(self) -> None:
        """From now on the bot token is refused with `token_expired`."""
        with self._lock:
            self.faults.token_expired = True

    # -- what the peer recorded --------------------------------------------------------------------

    def calls_to(self, method: str) -> list[ApiCall]:
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def posted(self) -> list[PeerMessage]:
        with self._lock:
            return list(self.messages.values())

    # -- Web API -----------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        body = await _read_body(request)
        authorization = request.headers.get("Authorization", "")
        with self._lock:
            faults = _Faults(**vars(self.faults))
            if self.faults.fail_next > 0:
                self.faults.fail_next -= 1
        if faults.delay:
            await asyncio.sleep(faults.delay)
        if time.monotonic() < faults.rate_limited_until:
            return self._record(
                method,
                body,
                authorization,
                web.json_response(
                    {"ok": False, "error": "ratelimited"},
                    status=429,
                    headers={"Retry-After": str(faults.retry_after)},
                ),
                "ratelimited",
            )
        if faults.fail_next > 0:
            return self._record(
                method,
                body,
                authorization,
                web.Response(status=faults.fail_status, text="upstream error"),
                "http",
            )
        answer = self._answer(method, body, authorization, faults)
        return self._record(method, body, authorization, web.json_response(answer), answer.get("error"))

    def _record(
        self, method: str, body: dict[str, Any], authorization: str, response: web.Response, error: str | None
    ) -> web.Response:
        with self._lock:
            self.calls.append(
                ApiCall(
                    method=method,
                    body=body,
                    authorization=authorization,
                    status=response.status,
                    error=error,
                    at=time.monotonic(),
                )
            )
        return response

    def _answer(
        self, method: str, body: dict[str, Any], authorization: str, faults: _Faults
    ) -> dict[str, Any]:
        if method == "apps.connections.open":
            if self.app_token is None or authorization != f"Bearer {self.app_token}":
                return {"ok": False, "error": "invalid_auth"}
            ticket = secrets.token_hex(8)
            self._tickets.add(ticket)
            return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}"}
        if not hmac.compare_digest(authorization, f"Bearer {self.bot_token}"):
            return {"ok": False, "error": "not_authed" if not authorization else "invalid_auth"}
        if faults.token_expired:
            return {"ok": False, "error": "token_expired"}
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "users.info": self._users_info,
        }
        handler = handlers.get(method)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        with self._lock:
            return handler(body)

    def _auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://kobot-test.slack.com/",
            "team": "kobot test",
            "user": "kobot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": "B0KOBOT",
            "is_enterprise_install": False,
        }

    def _post_message(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = str(body.get("channel") or "")
        problem = self._check_message(channel, body)
        if problem:
            return {"ok": False, "error": problem}
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        thread_ts = body.get("thread_ts") or None
        message = PeerMessage(
            channel=channel,
            ts=ts,
            thread_ts=thread_ts,
            text=body.get("text", ""),
            blocks=body.get("blocks", []),
        )
        self.messages[(channel, ts)] = message
        reply = {
            "type": "message",
            "text": message.text,
            "ts": ts,
            "bot_id": "B0KOBOT",
            "blocks": message.blocks,
        }
        if thread_ts:
            reply["thread_ts"] = thread_ts
        return {"ok": True, "channel": channel, "ts": ts, "message": reply}

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = str(body.get("channel") or "")
        problem = self._check_message(channel, body)
        if problem:
            return {"ok": False, "error": problem}
        message = self.messages.get((channel, str(body.get("ts", ""))))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message.edits.append(body)
        message.text = body.get("text", message.text)
        if "blocks" in body:
            message.blocks = body["blocks"]
        return {"ok": True, "channel": channel, "ts": message.ts, "text": message.text}

    def _post_ephemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = str(body.get("channel") or "")
        problem = self._check_message(channel, body)
        if problem:
            return {"ok": False, "error": problem}
        if not body.get("user"):
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "message_ts": f"{int(time.time())}.{next(self._ts):06d}"}

    def _users_info(self, body: dict[str, Any]) -> dict[str, Any]:
        user_id = str(body.get("user", ""))
        user = self.users.get(user_id)
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {
            "ok": True,
            "user": {
                "id": user_id,
                "team_id": self.team_id,
                "name": user["name"],
                "real_name": user["real_name"],
                "profile": {
                    "display_name": user["display_name"],
                    "real_name": user["real_name"],
                    "email": user["email"],
                },
            },
        }

    def _check_message(self, channel: str, body: dict[str, Any]) -> str | None:
        """The checks Slack applies before it takes a message."""
        if not channel or channel in self.missing_channels:
            return "channel_not_found"
        if not body.get("text") and not body.get("blocks"):
            return "no_text"
        blocks = body.get("blocks", [])
        if not isinstance(blocks, list) or len(blocks) > 50:
            return "invalid_blocks"
        for block in blocks:
            if block.get("type") == "header" and len(block["text"]["text"]) > 150:
                return "invalid_blocks"
            if block.get("type") == "section" and len(block.get("text", {}).get("text", "")) > 3000:
                return "invalid_blocks"
            if block.get("type") == "actions":
                ids = [element.get("action_id") for element in block.get("elements", [])]
                if len(ids) != len(set(ids)) or len(ids) > 25:
                    return "invalid_blocks"
        return None

    # -- Socket Mode -------------------------------------------------------------------------------

    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        with self._lock:
            self.socket_connections += 1
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0KOBOT"}})
        try:
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    continue
                ack = json.loads(frame.data)
                envelope_id = ack.get("envelope_id")
                if not envelope_id:
                    continue
                with self._lock:
                    self.acks[envelope_id] = ack
                waiter = self._ack_waiters.pop(envelope_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(ack)
        finally:
            self._sockets.remove(ws)
        return ws

    async def push(self, envelope_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one envelope to the connected client (from the test's loop) and return its ack."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._push(envelope_type, payload), self._loop)
        return await asyncio.wrap_future(future)

    async def _push(self, envelope_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + PEER_TIMEOUT_SECONDS
        while not self._sockets:
            if time.monotonic() > deadline:
                raise TimeoutError("no socket mode client connected")
            await asyncio.sleep(0.01)
        envelope_id = secrets.token_hex(8)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._ack_waiters[envelope_id] = waiter
        await self._sockets[-1].send_json(
            {
                "envelope_id": envelope_id,
                "type": envelope_type,
                "payload": payload,
                "accepts_response_payload": envelope_type != "events_api",
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        return await asyncio.wait_for(waiter, PEER_TIMEOUT_SECONDS)

    async def send_disconnect(self) -> None:
        """Ask the client to reconnect, as Slack does before it recycles a link."""
        assert self._loop is not None

        async def disconnect() -> None:
            for ws in list(self._sockets):
                await ws.send_json({"type": "disconnect", "reason": "refresh_requested"})

        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(disconnect(), self._loop))


async def _read_body(request: web.Request) -> dict[str, Any]:
    """Arguments as Slack reads them: query string (GET) merged with a JSON or form body."""
    query = {key: str(value) for key, value in request.query.items()}
    if request.method == "GET":
        return query
    if request.content_type == "application/json":
        data = await request.json()
        return query | (dict(data) if isinstance(data, dict) else {})
    form = await request.post()
    return query | {key: str(value) for key, value in form.items()}
