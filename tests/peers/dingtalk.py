"""A local DingTalk: the stream gateway, the Open API, session webhooks and custom robots, over loopback.

A `LoopbackPeer`: an aiohttp server on 127.0.0.1 in its own thread and event loop. The real
dingtalk-stream SDK and kobot's adapter talk to it exactly as to api.dingtalk.com; only the endpoint
differs. Time the platform counts (tickets, tokens, throttles, the disconnect grace) is read from a
`PeerClock` the test can move forward.

What it models, and where each behaviour comes from:
- connections/open → `{endpoint, ticket}`; the ticket is single use and lives 90 s (SDK
  `stream.py` `open_connection`; stream protocol docs "建立连接": 90 s).
- Bot messages are fire-and-forget (stream protocol FAQ "消息推送失败会重试吗"): a frame goes to one
  open connection, is never pushed again if it is not acked, and a message pushed while no
  connection is open is dropped (`dropped`, `lost`).
- Several open connections: each frame goes to one of them, in turn; a new connection does not
  close the old ones (stream protocol docs, "多连接").
- SYSTEM `ping` (answered by echoing its data) and `disconnect` (SDK `stream.py` `route_message`;
  the client closes at once); after `disconnect` the server sends nothing new on that connection
  and closes it itself 10 s later (stream protocol docs).
- Access tokens live `token_ttl` seconds; a missing, wrong or expired one is HTTP 400 with code
  `InvalidAuthentication` (Open API error-code page; not 401).
- Card createAndDeliver answers per target `deliverResults[].success` / `errorMsg` (Open API page
  "创建并投放卡片"); `fail_delivery` makes a target fail while HTTP stays 200. The SDK's public
  templates (`card_instance.py`: Markdown 589420e2…, Markdown with buttons 1366a1eb…) need
  `markdown`; buttons travel in `sys_full_json_obj` as `{"msgButtons": [...]}`; a button with
  `request: true` sends its `params` back as `cardPrivateData.params` (button shape from
  community code, not the SDK: the SDK documents only link buttons).
- The card's outTrackId is chosen by the caller (Open API page "创建并投放卡片", the SDK's
  card_replier.gen_card_id: a SHA-256 hex digest); `PUT /v1.0/card/instances` edits the card with that
  id in place (page "更新卡片"). What DingTalk answers for an update of an outTrackId it never created,
  and what a second createAndDeliver with an outTrackId that exists does, are not documented on the
  pages this peer was checked against: the peer refuses the update with HTTP 400 `card.notFound` (a
  stand-in, `CARD_NOT_FOUND_CODE`: kobot creates a tagged card on this code only), and takes the
  reading that would hurt a sender most for the second create: the card is delivered again, a second
  message (`deliveries`). kobot never creates a tagged card it may have created already.
- API rate limits answer HTTP 403 `Forbidden.AccessDenied.QpsLimitForApi` (限流 docs page);
  `rate_limit_next` queues one.
- robot groupMessages/send: `msgParam` at most 15,000 bytes (Open API page "机器人发送群聊消息");
  the refusal's code is not documented, `param.invalid` stands in for it.
- Custom robot webhooks verify the 加签 signature and its timestamp (custom robot docs), allow 20
  posts a minute and then throttle the robot for 10 minutes (errcode 130101, custom robot docs
  "消息发送频率限制"), and refuse messages over 20,000 bytes (errcode 460101).

Left out on purpose: HTTP-mode callbacks, media upload, event subscriptions other than the two
topics kobot uses, the EVENT frame type, the per-user flow control of oToMessages, the real
errcode of an expired session webhook (undocumented; any non-zero errcode), per-card update rates.
Every HTTP request is recorded; faults (status codes, Retry-After, slow answers) are injected on demand.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.peers.clock import PeerClock
from tests.peers.loopback import LOOPBACK, LoopbackPeer, Recording

SESSION_WEBHOOK_TTL_MS = 90 * 60 * 1000
"""Session webhooks live about 90 minutes on DingTalk."""

ROBOT_TIMESTAMP_SKEW_MS = 3600 * 1000
"""DingTalk refuses a robot post whose timestamp is more than an hour away from its clock."""

ROBOT_MAX_BYTES = 20_000
"""A custom robot message over this size is refused with errcode 460101."""

ROBOT_THROTTLE_SECONDS = 600.0
"""A custom robot that went over its budget is refused everything for this long."""

ROBOT_API_MSG_PARAM_MAX_BYTES = 15_000
"""groupMessages/send refuses a `msgParam` longer than this."""

TICKET_TTL_SECONDS = 90.0
"""A connections/open ticket opens a websocket only within this time."""

DISCONNECT_GRACE_SECONDS = 10.0
"""After SYSTEM disconnect the gateway closes the connection itself this much later."""

GRACE_POLL_SECONDS = 0.05
"""How often the peer looks for connections whose disconnect grace is over."""

CARD_NOT_FOUND_CODE = "card.notFound"
"""The code of an update refused for want of a card with that outTrackId (undocumented: a stand-in)."""
INVALID_TOKEN_CODE = "InvalidAuthentication"  # nosec B105  # an error code, not a token
QPS_LIMIT_CODE = "Forbidden.AccessDenied.QpsLimitForApi"

MARKDOWN_TEMPLATE_ID = "589420e2-c1e2-46ef-a5ed-b8728e654da9.schema"
MARKDOWN_BUTTON_TEMPLATE_ID = "1366a1eb-bc54-4859-ac88-517c56a9acb1.schema"
PUBLIC_TEMPLATES = frozenset({MARKDOWN_TEMPLATE_ID, MARKDOWN_BUTTON_TEMPLATE_ID})
"""The SDK's public card templates (dingtalk_stream/card_instance.py)."""


@dataclass
class Recorded:
    """One HTTP request as the peer saw it, and the status it answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw: bytes
    at: float
    status: int = 0
    answer: Any = None


@dataclass
class Ack:
    """A client's answer to a frame, with the time it arrived (monotonic)."""

    message_id: str
    code: int
    data: Any
    at: float


@dataclass
class Card:
    template_id: str
    open_space_id: str
    params: dict[str, str]
    history: list[dict[str, str]] = field(default_factory=list)
    delivered: bool = True

    def buttons(self) -> list[tuple[str, dict[str, Any]]]:
        """(label, callback params) of every button that calls back, as the card shows them now."""
        if self.template_id in PUBLIC_TEMPLATES:
            raw = json.loads(self.params.get("sys_full_json_obj") or "{}").get("msgButtons", [])
            return [(b["text"], dict(b["params"])) for b in raw if b.get("request") is True]
        raw = json.loads(self.params.get("buttons") or "[]")
        return [(b["text"], {"action_id": b["action_id"], "value": b["value"]}) for b in raw]


@dataclass
class GatewayConnection:
    """One open websocket; `closing_at` (peer clock) is set once the gateway sent `disconnect`."""

    number: int
    ws: web.WebSocketResponse
    request: web.Request
    closing_at: float | None = None
    in_flight: set[str] = field(default_factory=set)
    cut: bool = False
    """The socket was aborted: nothing can reach the client any more, whatever the server side thinks."""


class DingTalkPeer(LoopbackPeer):
    """Start with `with DingTalkPeer() as peer:`; `peer.endpoint` is the Open API / gateway base URL."""

    thread_name = "dingtalk-peer"

    def __init__(
        self,
        *,
        client_id: str = "dingkobotapp",
        client_secret: str | None = None,
        robots: dict[str, str] | None = None,
        robot_budget: int = 20,
        robot_window: float = 60.0,
        token_ttl: int = 7200,
        clock: PeerClock | None = None,
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        self.robots = robots if robots is not None else {secrets.token_hex(16): "SEC" + secrets.token_hex(24)}
        """Custom robots: access_token → signing secret."""
        self.robot_budget = robot_budget
        self.robot_window = robot_window
        self.token_ttl = token_ttl
        self.clock = clock or PeerClock()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.requests: Recording[Recorded] = Recording()
        self._tokens: dict[str, float] = {}
        self.cards: dict[str, Card] = {}
        self.deliveries: list[tuple[str, str]] = []
        """(outTrackId, openSpaceId) of every card delivery: what the conversations show."""
        self.sessions: dict[str, int] = {}
        self.robot_posts: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        self.robot_refusals: dict[str, list[int]] = collections.defaultdict(list)
        self._robot_sent_at: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._robot_throttled_until: dict[str, float] = {}
        self._tickets: dict[str, float] = {}
        self._ticket_age = 0.0
        self._delivery_failures: collections.deque[str] = collections.deque()
        self.connections = 0
        """How many websockets were opened so far."""
        self.subscriptions: list[dict[str, str]] = []
        self.acks: dict[str, list[Ack]] = collections.defaultdict(list)
        self.sent_frames: list[tuple[str, float]] = []
        """(messageId, monotonic time) of every frame written to a socket."""
        self.routed: dict[str, int] = {}
        """messageId → the number of the connection it was written to."""
        self.dropped: list[str] = []
        """Frames pushed while no connection could take them: DingTalk does not keep them."""
        self.lost: list[str] = []
        """Frames written but not acked before their connection ended: never pushed again."""
        self._open: list[GatewayConnection] = []
        self._turn = itertools.count()

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return self.origin

    def robot_webhook_url(self, token: str | None = None) -> str:
        token = token or next(iter(self.robots))
        return f"{self.endpoint}/robot/send?access_token={token}"

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_and_fault])
        app.router.add_post("/v1.0/gateway/connections/open", self._open_connection)
        app.router.add_get("/gateway/connect", self._gateway_socket)
        app.router.add_post("/v1.0/oauth2/accessToken", self._access_token)
        app.router.add_post("/v1.0/card/instances/createAndDeliver", self._card_create)
        app.router.add_put("/v1.0/card/instances", self._card_update)
        app.router.add_post("/v1.0/robot/groupMessages/send", self._robot_api_send)
        app.router.add_post("/v1.0/robot/oToMessages/batchSend", self._robot_api_send)
        app.router.add_post("/robot/sendBySession", self._session_webhook)
        app.router.add_post("/robot/send", self._custom_robot)
        app.cleanup_ctx.append(self._grace_watcher)
        return app

    async def before_shutdown(self) -> None:
        for connection in list(self._open):
            await connection.ws.close()

    # --- test-facing views and faults ------------------------------------------------------------

    def cards_shown_in(self, open_space_id: str) -> list[str]:
        """The outTrackId of every card message delivered to `open_space_id`, in order (twice if twice)."""
        with self._lock:
            return [track for track, space in self.deliveries if space == open_space_id]

    def requests_to(self, path: str) -> list[Recorded]:
        return self.requests.where(lambda r: r.path == path)

    def expire_tokens(self) -> None:
        """Every access token issued so far becomes invalid (as after its 2 hours)."""
        with self._lock:
            self._tokens.clear()

    def unacked(self) -> list[str]:
        """Frames written to a connection still open and not acked yet."""
        return self.on_loop(lambda: [m for c in self._open for m in c.in_flight])

    def open_connections(self) -> list[int]:
        """Numbers of the connections open now (1 is the first ever opened)."""
        return self.on_loop(lambda: [c.number for c in self._open])

    def ack_for(self, message_id: str) -> Ack | None:
        with self._lock:
            acks = self.acks.get(message_id)
            return acks[-1] if acks else None

    def age_next_ticket(self, seconds: float) -> None:
        """The next ticket handed out is born `seconds` ago (a client that waited before connecting)."""
        with self._lock:
            self._ticket_age = seconds

    def fail_delivery(self, error_msg: str = "robot is not in the group", *, times: int = 1) -> None:
        """The next `times` card deliveries fail for their target while the call itself says 200."""
        with self._lock:
            self._delivery_failures.extend([error_msg] * times)

    def rate_limit_next(self, path: str, *, count: int = 1) -> None:
        """The next `count` calls to `path` meet DingTalk's API rate limit: HTTP 403, QpsLimitForApi."""
        self.fail_next(
            count,
            status=403,
            path=path,
            body={"code": QPS_LIMIT_CODE, "message": "该API调用频率超过了限制"},
        )

    def robot_throttled(self, token: str | None = None) -> bool:
        token = token or next(iter(self.robots))
        with self._lock:
            return self._robot_throttled_until.get(token, 0.0) > self.clock.now()

    # --- stream: frames the platform pushes ------------------------------------------------------

    def push_chat(
        self,
        text: str,
        *,
        conversation_id: str = "cidGroupProd01",
        conversation_type: str = "2",
        staff_id: str = "staff-alice",
        nick: str = "Alice",
        msgtype: str = "text",
        created_ms: int | None = None,
        session_expired: bool = False,
        msg_id: str | None = None,
        then_drop: bool = False,
    ) -> str:
        """A chat frame (@-mention in a group, or a one-to-one message); returns its frame messageId."""
        now = int(time.time() * 1000)
        session = secrets.token_urlsafe(16)
        expires = now - 1000 if session_expired else now + SESSION_WEBHOOK_TTL_MS
        data: dict[str, Any] = {
            "conversationId": conversation_id,
            "atUsers": [{"dingtalkId": "$:LWCP_v1:$bot"}],
            "chatbotCorpId": "dingcorp01",
            "chatbotUserId": "$:LWCP_v1:$bot",
            "msgId": msg_id or f"msg{secrets.token_hex(8)}",
            "senderNick": nick,
            "isAdmin": False,
            "senderStaffId": staff_id,
            "sessionWebhookExpiredTime": expires,
            "createAt": created_ms if created_ms is not None else now,
            "senderCorpId": "dingcorp01",
            "conversationType": conversation_type,
            "senderId": f"$:LWCP_v1:${staff_id}",
            "sessionWebhook": f"{self.endpoint}/robot/sendBySession?session={session}",
            "robotCode": self.client_id,
            "msgtype": msgtype,
            "isInAtList": True,
        }
        if conversation_type == "2":
            data["conversationTitle"] = "prod-ops"
        if msgtype == "text":
            data["text"] = {"content": f" {text}"}
        else:
            data["content"] = {"downloadCode": "dl01"}
        with self._lock:
            self.sessions[session] = expires
        return self._push("CALLBACK", "/v1.0/im/bot/messages/get", data, then_drop=then_drop)

    def push_card_click(self, *, out_track_id: str, user_id: str, params: dict[str, Any]) -> str:
        """A card button callback; `params` is what the template's button sends."""
        content = {"cardPrivateData": {"actionIds": ["kobot_button"], "params": params}}
        data = {
            "extension": "{}",
            "corpId": "dingcorp01",
            "userId": user_id,
            "content": json.dumps(content),
            "outTrackId": out_track_id,
            "type": "actionCallback",
            "spaceType": "IM_GROUP",
        }
        return self._push("CALLBACK", "/v1.0/card/instances/callback", data)

    def click(self, *, out_track_id: str, user_id: str, label: str) -> str:
        """A click on the card's button labelled `label`: the callback carries that button's params."""
        card = self.cards[out_track_id]
        params = dict(card.buttons())[label]
        return self.push_card_click(out_track_id=out_track_id, user_id=user_id, params=params)

    def push_ping(self) -> str:
        return self._push("SYSTEM", "ping", {"opaque": secrets.token_hex(8)})

    def push_disconnect(self) -> str:
        """SYSTEM disconnect on the oldest open connection: it gets nothing new and closes in 10 s."""
        return self._push("SYSTEM", "disconnect", {"reason": "server maintenance"})

    def drop(self) -> None:
        """Cut every socket without a close handshake (a network failure)."""
        self.on_loop(lambda: [self._abort(c) for c in list(self._open)])

    def _push(self, kind: str, topic: str, data: dict[str, Any], *, then_drop: bool = False) -> str:
        message_id = f"frame-{next(self._ids)}-{secrets.token_hex(4)}"

        async def deliver() -> None:
            connection = self._route(kind, topic)
            if connection is None:
                with self._lock:
                    self.dropped.append(message_id)
                return
            frame = {
                "specVersion": "1.0",
                "type": kind,
                "headers": {
                    "appId": "app01",
                    "connectionId": f"conn-{connection.number}",
                    "contentType": "application/json",
                    "messageId": message_id,
                    "time": str(self.clock.wall_ms()),
                    "topic": topic,
                },
                "data": json.dumps(data, ensure_ascii=False),
            }
            if kind == "CALLBACK":
                connection.in_flight.add(message_id)
            if kind == "SYSTEM" and topic == "disconnect":
                connection.closing_at = self.clock.now() + DISCONNECT_GRACE_SECONDS
            with self._lock:
                self.routed[message_id] = connection.number
                self.sent_frames.append((message_id, time.monotonic()))
            await connection.ws.send_str(json.dumps(frame, ensure_ascii=False))
            if then_drop:
                self._abort(connection)

        self.run_on_loop(deliver())
        return message_id

    def _route(self, kind: str, topic: str) -> GatewayConnection | None:
        """Callbacks go to one live connection in turn; a connection told to disconnect gets none."""
        live = [c for c in self._open if c.closing_at is None and not c.cut and not c.ws.closed]
        if not live:
            return None
        if kind == "SYSTEM":
            return live[0]
        return live[next(self._turn) % len(live)]

    @staticmethod
    def _abort(connection: GatewayConnection) -> None:
        connection.cut = True
        if connection.request.transport is not None:
            connection.request.transport.abort()

    async def _grace_watcher(self, app: web.Application) -> AsyncIterator[None]:
        async def watch() -> None:
            while True:
                await asyncio.sleep(GRACE_POLL_SECONDS)
                now = self.clock.now()
                for connection in list(self._open):
                    if connection.closing_at is not None and connection.closing_at <= now:
                        await connection.ws.close()

        task = asyncio.create_task(watch())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # --- HTTP plumbing ---------------------------------------------------------------------------

    @web.middleware
    async def _record_and_fault(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        record = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=body,
            raw=raw,
            at=time.monotonic(),
        )
        self.requests.add(record)
        fault = self.faults.take(request.path)
        await self.apply_delay(fault)
        if fault is not None and fault.status:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            answer = fault.body or {"code": "ServiceUnavailable", "message": "injected fault"}
            record.status, record.answer = fault.status, answer
            return web.json_response(answer, status=fault.status, headers=headers)
        response: web.StreamResponse = await handler(request)
        record.status = response.status
        if isinstance(response, web.Response) and response.body is not None:
            try:
                record.answer = json.loads(response.body)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                record.answer = None
        return response

    def _authorized(self, request: web.Request) -> bool:
        token = request.headers.get("x-acs-dingtalk-access-token", "")
        with self._lock:
            expires = self._tokens.get(token)
        return expires is not None and self.clock.now() < expires

    @staticmethod
    def _open_api_error(status: int, code: str, message: str) -> web.Response:
        return web.json_response(
            {"code": code, "message": message, "requestid": secrets.token_hex(8)}, status=status
        )

    def _token_refused(self) -> web.Response:
        return self._open_api_error(400, INVALID_TOKEN_CODE, "不合法的access_token")

    # --- stream gateway --------------------------------------------------------------------------

    async def _open_connection(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clientId") != self.client_id or not hmac.compare_digest(
            str(body.get("clientSecret", "")), self.client_secret
        ):
            return self._open_api_error(401, "InvalidAuthentication", "clientId or clientSecret is wrong")
        ticket = secrets.token_urlsafe(24)
        with self._lock:
            self._tickets[ticket] = self.clock.now() - self._ticket_age
            self._ticket_age = 0.0
            self.subscriptions = list(body.get("subscriptions", []))
        return web.json_response(
            {"endpoint": f"ws://{LOOPBACK}:{self.port}/gateway/connect", "ticket": ticket}
        )

    async def _gateway_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        with self._lock:
            issued = self._tickets.pop(ticket, None)
        if issued is None or self.clock.now() - issued > TICKET_TTL_SECONDS:
            return self._open_api_error(403, "InvalidTicket", "ticket is invalid, used or expired")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        with self._lock:
            self.connections += 1
            number = self.connections
        connection = GatewayConnection(number=number, ws=ws, request=request)
        self._open.append(connection)
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                ack = json.loads(message.data)
                message_id = str(ack.get("headers", {}).get("messageId", ""))
                code = int(ack.get("code", 0))
                with self._lock:
                    self.acks[message_id].append(
                        Ack(message_id=message_id, code=code, data=ack.get("data"), at=time.monotonic())
                    )
                # Any answer ends the frame's delivery: DingTalk does not push it again, acked or not.
                connection.in_flight.discard(message_id)
        finally:
            self._open.remove(connection)
            with self._lock:
                self.lost.extend(sorted(connection.in_flight))
        return ws

    # --- Open API --------------------------------------------------------------------------------

    async def _access_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("appKey") != self.client_id or body.get("appSecret") != self.client_secret:
            return self._open_api_error(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
        token = secrets.token_hex(16)
        with self._lock:
            self._tokens[token] = self.clock.now() + self.token_ttl
        return web.json_response({"accessToken": token, "expireIn": self.token_ttl})

    async def _card_create(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._token_refused()
        body = await request.json()
        params = body.get("cardData", {}).get("cardParamMap")
        space = str(body.get("openSpaceId", ""))
        template = str(body.get("cardTemplateId") or "")
        if (
            not template
            or not body.get("outTrackId")
            or not space.startswith(("dtv1.card//IM_GROUP.", "dtv1.card//IM_ROBOT."))
            or not isinstance(params, dict)
            or not all(isinstance(v, str) for v in params.values())
        ):
            return self._open_api_error(
                400, "param.invalid", "cardTemplateId, outTrackId, openSpaceId, cardParamMap"
            )
        problem = _public_template_problem(template, params)
        if problem is not None:
            return self._open_api_error(400, "param.invalid", problem)
        space_type, _, space_id = space.removeprefix("dtv1.card//").partition(".")
        with self._lock:
            failure = self._delivery_failures.popleft() if self._delivery_failures else None
            if failure is None:
                self.deliveries.append((str(body["outTrackId"]), space))
            self.cards[body["outTrackId"]] = Card(
                template_id=template,
                open_space_id=space,
                params=dict(params),
                history=[dict(params)],
                delivered=failure is None,
            )
        result: dict[str, Any] = {"spaceType": space_type, "spaceId": space_id, "success": failure is None}
        if failure is not None:
            result["errorMsg"] = failure
        return web.json_response(
            {"success": True, "result": {"outTrackId": body["outTrackId"], "deliverResults": [result]}}
        )

    async def _card_update(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._token_refused()
        body = await request.json()
        params = body.get("cardData", {}).get("cardParamMap")
        with self._lock:
            card = self.cards.get(str(body.get("outTrackId")))
            if card is None:
                return self._open_api_error(400, CARD_NOT_FOUND_CODE, "no card with this outTrackId")
            if not isinstance(params, dict):
                return self._open_api_error(400, "param.invalid", "cardData.cardParamMap")
            problem = _public_template_problem(card.template_id, {**card.params, **params})
            if problem is not None:
                return self._open_api_error(400, "param.invalid", problem)
            card.params.update(params)
            card.history.append(dict(params))
        return web.json_response({"success": True, "result": True})

    async def _robot_api_send(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._token_refused()
        body = await request.json()
        target = body.get("openConversationId") or body.get("userIds")
        msg_param = body.get("msgParam")
        if body.get("robotCode") != self.client_id or not target or not isinstance(msg_param, str):
            return self._open_api_error(400, "param.invalid", "robotCode, target, msgKey, msgParam")
        if len(msg_param.encode()) > ROBOT_API_MSG_PARAM_MAX_BYTES:
            return self._open_api_error(
                400, "param.invalid", f"msgParam is longer than {ROBOT_API_MSG_PARAM_MAX_BYTES} bytes"
            )
        answer: dict[str, Any] = {"processQueryKey": secrets.token_urlsafe(12)}
        if "userIds" in body:
            answer.update({"invalidStaffIdList": [], "flowControlledStaffIdList": []})
        return web.json_response(answer)

    async def _session_webhook(self, request: web.Request) -> web.Response:
        session = request.query.get("session", "")
        with self._lock:
            expires = self.sessions.get(session)
        if expires is None or expires < time.time() * 1000:
            # DingTalk's exact errcode for an expired session is not documented; any non-zero is a failure.
            return web.json_response({"errcode": 300001, "errmsg": "session webhook expired or unknown"})
        return self._check_robot_message(await request.read()) or web.json_response(
            {"errcode": 0, "errmsg": "ok"}
        )

    async def _custom_robot(self, request: web.Request) -> web.Response:
        token = request.query.get("access_token", "")
        secret = self.robots.get(token)
        if secret is None:
            return self._robot_refusal(token, 300001, "token is not exist")
        try:
            timestamp = int(request.query.get("timestamp", ""))
        except ValueError:
            return self._robot_refusal(token, 310000, "sign not match, missing timestamp")
        if abs(self.clock.wall_ms() - timestamp) > ROBOT_TIMESTAMP_SKEW_MS:
            return self._robot_refusal(token, 310000, "invalid timestamp")
        expected = base64.b64encode(
            hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
        ).decode()
        if not hmac.compare_digest(request.query.get("sign", ""), expected):
            return self._robot_refusal(token, 310000, "sign not match")
        raw = await request.read()
        problem = self._check_robot_message(raw)
        if problem is not None:
            return problem
        now = self.clock.now()
        with self._lock:
            if self._robot_throttled_until.get(token, 0.0) > now:
                self.robot_refusals[token].append(130101)
                return web.json_response({"errcode": 130101, "errmsg": "send too fast, throttled"})
            sent = self._robot_sent_at[token]
            while sent and now - sent[0] >= self.robot_window:
                sent.popleft()
            if len(sent) >= self.robot_budget:
                # Over the budget the robot is not refused for the rest of the minute but for 10 minutes.
                self._robot_throttled_until[token] = now + ROBOT_THROTTLE_SECONDS
                self.robot_refusals[token].append(130101)
                return web.json_response(
                    {
                        "errcode": 130101,
                        "errmsg": f"send too fast, exceed {self.robot_budget} times per minute",
                    }
                )
            sent.append(now)
            self.robot_posts[token].append(json.loads(raw))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def _robot_refusal(self, token: str, errcode: int, errmsg: str) -> web.Response:
        with self._lock:
            self.robot_refusals[token].append(errcode)
        return web.json_response({"errcode": errcode, "errmsg": errmsg})

    @staticmethod
    def _check_robot_message(raw: bytes) -> web.Response | None:
        if len(raw) > ROBOT_MAX_BYTES:
            return web.json_response({"errcode": 460101, "errmsg": "message too long, exceed 20000 bytes"})
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response({"errcode": 40035, "errmsg": "缺少参数 json"})
        kind = body.get("msgtype")
        content = body.get(kind) if isinstance(kind, str) else None
        if kind not in ("text", "markdown") or not isinstance(content, dict):
            return web.json_response({"errcode": 40035, "errmsg": "缺少参数 msgtype"})
        if kind == "markdown" and not (content.get("title") and content.get("text")):
            return web.json_response({"errcode": 40035, "errmsg": "缺少参数 markdown.title/text"})
        return None


def _public_template_problem(template: str, params: dict[str, Any]) -> str | None:
    """What a public template cannot show from `params`: its `markdown`, and well-formed buttons."""
    if template not in PUBLIC_TEMPLATES:
        return None
    if not params.get("markdown"):
        return "the public markdown card needs cardParamMap.markdown"
    raw = params.get("sys_full_json_obj")
    if raw is None:
        return None
    try:
        buttons = json.loads(raw).get("msgButtons")
    except (ValueError, AttributeError):
        return "sys_full_json_obj is not a JSON object"
    if not isinstance(buttons, list) or not all(
        isinstance(b, dict)
        and b.get("text")
        and (b.get("request") is not True or isinstance(b.get("params"), dict))
        for b in buttons
    ):
        return "msgButtons must be a list of buttons with text (and params when they call back)"
    return None


def _button_ok(button: Any) -> bool:
    """A button needs its text; one that calls back (`request: true`) needs the params it sends back."""
    if not isinstance(button, dict) or not button.get("text"):
        return False
    return button.get("request") is not True or isinstance(button.get("params"), dict)
