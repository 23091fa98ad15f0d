"""A local Slack: the Web API, Socket Mode and signed event delivery, over real loopback sockets.

The peer is a `LoopbackPeer` (an aiohttp server on 127.0.0.1 in its own thread and event loop), so
the code under test (slack-sdk, Bolt) talks to it exactly as it would to slack.com: only the base
URL differs.
It answers the Web API methods kobot uses the way Slack does (HTTP 200 with `ok: false` for API
errors, 429 with Retry-After for rate limits), keeps the messages it was sent and their edits,
checks Block Kit limits Slack enforces, records every request, and injects faults on demand.
Time that matters (retry schedules, the per-channel posting rate) is read from `clock`, a
`PeerClock` a test moves forward instead of sleeping.

Where each behaviour comes from:
- Web API answers (HTTP 200 with `ok: false`; `channel_not_found`, `not_in_channel`, `is_archived`,
  `msg_too_long`, `no_text`, `invalid_blocks`, `message_not_found`): the methods' pages on
  docs.slack.dev (chat.postMessage, chat.update), and slack_sdk/web/async_client.py for how the
  SDK sends them (JSON bodies with blocks).
- chat.update answers with `channel`, `ts`, `text` and the edited `message`: chat.update's page.
- `msg_blocks_too_long` past about 12,000 characters of text across all blocks: the undocumented
  cumulative limit, reported in slackapi/bolt-js#2509 (refused at ~13,200 characters, "12,000 text
  characters with a buffer for block containers" per the maintainers) and #2867 (refused at 11,341
  characters of text). The peer counts only text, at 12,000; kobot keeps well under it.
- One message per second per channel, then 429 `ratelimited` with Retry-After: chat.postMessage's
  rate-limit section ("1 message per second to a specific channel", short bursts allowed) and the
  rate-limits page (429 + Retry-After). The peer allows no burst, the strictest reading; it applies
  the limit when built with `post_interval_seconds=POST_INTERVAL_SECONDS`.
- Event delivery over HTTP: signed v0 requests; an event not answered 2xx within 3 seconds is sent
  again up to 3 times (nearly at once, after 1 minute, after 5 minutes) with `X-Slack-Retry-Num` and
  `X-Slack-Retry-Reason` (`http_timeout`, `http_error`): the Events API page, "Error handling" /
  "Retries". Each attempt is signed afresh (its own timestamp), so a replay guard on (timestamp,
  signature) never refuses a retry.
- Socket Mode envelopes: `accepts_response_payload` is true only for slash commands and for
  interactions that may answer with a payload (view_submission, block_suggestion), false for
  events and block_actions; `retry_attempt`/`retry_reason` belong to events_api envelopes only
  (slack_sdk/socket_mode/request.py, the Socket Mode page).

What it leaves out: Socket Mode's redelivery of an envelope not acked in time (every envelope here is
sent once; `push` twice stands for a redelivery), retries of interactions (Slack does not retry them; a
user whose click timed out sees a warning and may click again, which is a new click), workspace-wide
posting limits (several hundred a minute), the `X-Slack-No-Retry` answer header, disabling an app's event
subscriptions after repeated failures, Slack truncating or re-rendering mrkdwn, and Enterprise Grid
payload variants.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from tests.peers.clock import PeerClock
from tests.peers.loopback import LOOPBACK, PEER_TIMEOUT_SECONDS, Fault, LoopbackPeer, Recording
from tests.peers.slack_events import (
    block_actions,
    event_callback,
    form_body,
    im_event,
    interactive_body,
    mention_event,
    signed_headers,
    slash_command,
)

__all__ = [
    "ApiCall",
    "EventDelivery",
    "PeerMessage",
    "SlackPeer",
    "block_actions",
    "event_callback",
    "form_body",
    "im_event",
    "interactive_body",
    "mention_event",
    "signed_headers",
    "slash_command",
]

ACK_DEADLINE_SECONDS = 3.0
"""Slack waits this long for a 2xx to an Events API request before it counts the attempt as failed."""

RETRY_DELAYS_SECONDS = (0.0, 60.0, 300.0)
"""When Slack sends a failed event again, after the first failure: nearly at once, 1 min, 5 min."""

POST_INTERVAL_SECONDS = 1.0
"""chat.postMessage takes one message per second per channel; a faster one is answered 429."""

TEXT_MAX_CHARS = 40_000
"""A message's `text` longer than this is refused with msg_too_long."""

BLOCKS_TEXT_MAX_CHARS = 12_000
"""Text across all of a message's blocks beyond this is refused with msg_blocks_too_long."""

SECTION_TEXT_MAX_CHARS = 3000
"""A section's text beyond this is invalid_blocks."""

MAX_BLOCKS = 50
"""More blocks than this in one message is invalid_blocks."""

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
class EventDelivery:
    """One HTTP attempt at delivering an event to the app, as Slack makes it."""

    event_id: str
    attempt: int
    """0 for the first delivery, then the X-Slack-Retry-Num it carried."""
    retry_reason: str
    status: int
    """The app's HTTP status, or 0 when it did not answer within the deadline."""
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
    metadata: dict[str, Any] | None = None
    """chat.postMessage's `metadata` (event_type, event_payload); chat.update without it keeps it."""


class SlackPeer(LoopbackPeer):
    """Slack's Web API and Socket Mode on a loopback port. Use as a context manager."""

    thread_name = "slack-peer"

    def __init__(
        self,
        *,
        bot_token: str,
        app_token: str | None = None,
        users: dict[str, dict[str, Any]] | None = None,
        team_id: str = "T0KOBOT",
        bot_user_id: str = "U0KOBOT",
        clock: PeerClock | None = None,
        post_interval_seconds: float = 0.0,
    ) -> None:
        super().__init__()
        self.clock = clock or PeerClock()
        self.deliveries: Recording[EventDelivery] = Recording()
        self.not_in_channels: set[str] = set()
        """Channels the bot is not a member of: posts there answer not_in_channel."""
        self.archived_channels: set[str] = set()
        """Archived channels: posts there answer is_archived."""
        self.post_interval_seconds = post_interval_seconds
        """Slack's per-channel spacing of chat.postMessage is POST_INTERVAL_SECONDS; tests of the posting
        rate pass it. 0 (the default) lets throughput tests and alert storms measure kobot, not the limit."""
        self.blocks_text_max_chars = BLOCKS_TEXT_MAX_CHARS
        """Lowered by a test to stand for Slack's per-block overhead, which the peer does not count."""
        self._next_post_at: dict[str, float] = {}
        self.bot_token = bot_token
        self.app_token = app_token
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.requests: Recording[ApiCall] = Recording()
        self.messages: dict[tuple[str, str], PeerMessage] = {}
        self.acks: dict[str, dict[str, Any]] = {}
        self.socket_connections = 0
        self.api_client_ports: set[int] = set()
        """The client-side port of every Web API call: how many connections kobot opened for them."""
        self.missing_channels: set[str] = {"C0GONE"}
        self._rate_limited_until = 0.0
        self._retry_after = 1
        self._token_expired = False
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._ack_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"{self.origin}/api/"

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=2_000_000)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_get("/link/", self._link)
        return app

    async def before_shutdown(self) -> None:
        for ws in list(self._sockets):
            await ws.close()

    # -- fault injection ---------------------------------------------------------------------------

    def rate_limit(self, *, seconds: float, retry_after: int = 1) -> None:
        """Answer every Web API call with 429 + Retry-After for the next `seconds`."""
        with self._lock:
            self._rate_limited_until = time.monotonic() + seconds
            self._retry_after = retry_after

    def expire_token(self) -> None:
        """From now on the bot token is refused with `token_expired`."""
        with self._lock:
            self._token_expired = True

    # -- what the peer recorded --------------------------------------------------------------------

    def requests_to(self, method: str) -> list[ApiCall]:
        """The Web API calls of one method (`chat.postMessage`), in arrival order."""
        return self.requests.where(lambda call: call.method == method)

    def posted(self) -> list[PeerMessage]:
        with self._lock:
            return list(self.messages.values())

    # -- Web API -----------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        peername = request.transport.get_extra_info("peername") if request.transport else None
        if peername:
            self.api_client_ports.add(int(peername[1]))
        body = await _read_body(request)
        authorization = request.headers.get("Authorization", "")
        fault = self.faults.take(request.path)
        with self._lock:
            rate_limited_until, retry_after = self._rate_limited_until, self._retry_after
        await self.apply_delay(fault)
        if time.monotonic() < rate_limited_until:
            return self._record(
                method,
                body,
                authorization,
                web.json_response(
                    {"ok": False, "error": "ratelimited"},
                    status=429,
                    headers={"Retry-After": str(retry_after)},
                ),
                "ratelimited",
            )
        if fault is not None and fault.status:
            return self._record(
                method,
                body,
                authorization,
                _fault_response(fault),
                "http",
            )
        wait = self._channel_rate_wait(method, body, authorization)
        if wait is not None:
            return self._record(
                method,
                body,
                authorization,
                web.json_response(
                    {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(wait)}
                ),
                "ratelimited",
            )
        answer = self._answer(method, body, authorization)
        return self._record(method, body, authorization, web.json_response(answer), answer.get("error"))

    def _channel_rate_wait(self, method: str, body: dict[str, Any], authorization: str) -> int | None:
        """Whole seconds to wait when this post comes within a second of the channel's last one."""
        if not self.post_interval_seconds or method != "chat.postMessage":
            return None
        if authorization != f"Bearer {self.bot_token}":
            return None
        channel = str(body.get("channel") or "")
        now = self.clock.now()
        with self._lock:
            due = self._next_post_at.get(channel, 0.0)
            if now < due:
                return max(1, math.ceil(due - now))
            self._next_post_at[channel] = now + self.post_interval_seconds
        return None

    def _record(
        self, method: str, body: dict[str, Any], authorization: str, response: web.Response, error: str | None
    ) -> web.Response:
        self.requests.add(
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

    def _answer(self, method: str, body: dict[str, Any], authorization: str) -> dict[str, Any]:
        if method == "apps.connections.open":
            if self.app_token is None or authorization != f"Bearer {self.app_token}":
                return {"ok": False, "error": "invalid_auth"}
            ticket = secrets.token_hex(8)
            self._tickets.add(ticket)
            return {"ok": True, "url": f"ws://{LOOPBACK}:{self.port}/link/?ticket={ticket}"}
        if not hmac.compare_digest(authorization, f"Bearer {self.bot_token}"):
            return {"ok": False, "error": "not_authed" if not authorization else "invalid_auth"}
        with self._lock:
            token_expired = self._token_expired
        if token_expired:
            return {"ok": False, "error": "token_expired"}
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
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
            metadata=body.get("metadata") if isinstance(body.get("metadata"), dict) else None,
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
        edited = {"type": "message", "text": message.text, "bot_id": "B0KOBOT", "blocks": message.blocks}
        return {"ok": True, "channel": channel, "ts": message.ts, "text": message.text, "message": edited}

    def _history(self, body: dict[str, Any]) -> dict[str, Any]:
        """conversations.history: top-level messages newer than `oldest`, newest first, paged by `cursor`;
        metadata only with `include_all_metadata` (as Slack does)."""
        channel = str(body.get("channel") or "")
        if not channel or channel in self.missing_channels:
            return {"ok": False, "error": "channel_not_found"}
        shown = [m for m in self.messages.values() if m.channel == channel and m.thread_ts in (None, m.ts)]
        return _history_page(shown, body, newest_first=True)

    def _replies(self, body: dict[str, Any]) -> dict[str, Any]:
        """conversations.replies: the thread's parent and replies newer than `oldest`, oldest first."""
        channel, thread = str(body.get("channel") or ""), str(body.get("ts") or "")
        if (channel, thread) not in self.messages:
            return {"ok": False, "error": "thread_not_found"}
        shown = [m for m in self.messages.values() if m.channel == channel and thread in (m.ts, m.thread_ts)]
        return _history_page(shown, body, newest_first=False)

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
        if channel in self.archived_channels:
            return "is_archived"
        if channel in self.not_in_channels:
            return "not_in_channel"
        if not body.get("text") and not body.get("blocks"):
            return "no_text"
        if len(str(body.get("text") or "")) > TEXT_MAX_CHARS:
            return "msg_too_long"
        blocks = body.get("blocks", [])
        if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
            return "invalid_blocks"
        if blocks_text_chars(blocks) > self.blocks_text_max_chars:
            return "msg_blocks_too_long"
        for block in blocks:
            if block.get("type") == "header" and len(block["text"]["text"]) > 150:
                return "invalid_blocks"
            text = block.get("text", {}).get("text", "")
            if block.get("type") == "section" and len(text) > SECTION_TEXT_MAX_CHARS:
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
        return await self.from_test_loop(self._push(envelope_type, payload))

    async def _push(self, envelope_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + PEER_TIMEOUT_SECONDS
        while not self._sockets:
            if time.monotonic() > deadline:
                raise TimeoutError("no socket mode client connected")
            await asyncio.sleep(0.01)
        envelope_id = secrets.token_hex(8)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._ack_waiters[envelope_id] = waiter
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload(envelope_type, payload),
        }
        if envelope_type == "events_api":
            envelope |= {"retry_attempt": 0, "retry_reason": ""}
        await self._sockets[-1].send_json(envelope)
        return await asyncio.wait_for(waiter, PEER_TIMEOUT_SECONDS)

    # -- Events API over HTTP ----------------------------------------------------------------------

    async def deliver_event(
        self,
        url: str,
        payload: dict[str, Any],
        *,
        signing_secret: str,
        deadlines: tuple[float, ...] = (ACK_DEADLINE_SECONDS,),
    ) -> list[EventDelivery]:
        """Deliver one event to `url` as Slack does, retries included; returns the attempts.

        `deadlines[n]` is attempt n's deadline (the last one repeats): a test shortens one to stand
        for an app whose ack came too late. Retries wait on `clock`: advance it to let them go.
        """
        return await self.from_test_loop(self._deliver(url, payload, signing_secret, deadlines))

    async def _deliver(
        self, url: str, payload: dict[str, Any], signing_secret: str, deadlines: tuple[float, ...]
    ) -> list[EventDelivery]:
        body = json.dumps(payload).encode()
        event_id = str(payload.get("event_id", ""))
        attempts: list[EventDelivery] = []
        first_failure = 0.0
        reason = ""
        async with aiohttp.ClientSession() as session:
            for attempt in range(len(RETRY_DELAYS_SECONDS) + 1):
                if attempt:
                    due = first_failure + RETRY_DELAYS_SECONDS[attempt - 1]
                    while self.clock.now() < due:
                        await asyncio.sleep(0.01)
                headers = {
                    "Content-Type": "application/json",
                    # signed with the real time: the app's clock is not the one the test moves
                    **signed_headers(signing_secret=signing_secret, body=body),
                }
                if attempt:
                    headers |= {"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": reason}
                deadline = deadlines[min(attempt, len(deadlines) - 1)]
                status = 0
                try:
                    async with session.post(
                        url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=deadline)
                    ) as response:
                        await response.read()
                        status = response.status
                except TimeoutError:
                    reason = "http_timeout"
                except aiohttp.ClientError:
                    reason = "connection_failed"
                else:
                    reason = "" if 200 <= status < 300 else "http_error"
                delivery = EventDelivery(
                    event_id=event_id,
                    attempt=attempt,
                    retry_reason=headers.get("X-Slack-Retry-Reason", ""),
                    status=status,
                    at=self.clock.now(),
                )
                attempts.append(self.deliveries.add(delivery))
                if not reason:
                    break
                if attempt == 0:
                    first_failure = self.clock.now()
        return attempts

    async def send_disconnect(self) -> None:
        """Ask the client to reconnect, as Slack does before it recycles a link."""

        async def disconnect() -> None:
            for ws in list(self._sockets):
                await ws.send_json({"type": "disconnect", "reason": "refresh_requested"})

        await self.from_test_loop(disconnect())


def accepts_response_payload(envelope_type: str, payload: dict[str, Any]) -> bool:
    """Whether Slack lets the ack of this envelope carry a response (a modal update, a command reply)."""
    if envelope_type == "slash_commands":
        return True
    return envelope_type == "interactive" and payload.get("type") in {"view_submission", "block_suggestion"}


def blocks_text_chars(blocks: list[Any]) -> int:
    """Characters of every `text` string anywhere in `blocks` (sections, fields, context, buttons)."""
    total = 0
    stack: list[Any] = list(blocks)
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "text" and isinstance(value, str):
                    total += len(value)
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return total


def _history_page(messages: list[PeerMessage], body: dict[str, Any], *, newest_first: bool) -> dict[str, Any]:
    """One page of a history answer (`oldest`, `limit`, `cursor`, `include_all_metadata`)."""
    oldest = float(body.get("oldest") or 0)
    limit = int(body.get("limit") or 100)
    start = int(body.get("cursor") or 0)
    chosen = sorted(
        (m for m in messages if float(m.ts) > oldest), key=lambda m: float(m.ts), reverse=newest_first
    )
    page = chosen[start : start + limit]
    with_metadata = str(body.get("include_all_metadata", "")).lower() in {"1", "true"}
    shown = []
    for message in page:
        item: dict[str, Any] = {
            "type": "message",
            "ts": message.ts,
            "text": message.text,
            "bot_id": "B0KOBOT",
        }
        if message.thread_ts:
            item["thread_ts"] = message.thread_ts
        if with_metadata and message.metadata is not None:
            item["metadata"] = message.metadata
        shown.append(item)
    more = start + limit < len(chosen)
    return {
        "ok": True,
        "messages": shown,
        "has_more": more,
        "response_metadata": {"next_cursor": str(start + limit) if more else ""},
    }


def _fault_response(fault: Fault) -> web.Response:
    """A bare HTTP error, as a broken edge in front of Slack would answer."""
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
    return web.Response(status=fault.status, text="upstream error", headers=headers)


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
