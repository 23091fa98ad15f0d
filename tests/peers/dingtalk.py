"""A local DingTalk: the stream gateway, the Open API, session webhooks and custom robots, over loopback.

A `LoopbackPeer`: an aiohttp server on 127.0.0.1 in its own thread and event loop. The real
dingtalk-stream SDK and kobot's adapter talk to it exactly as to api.dingtalk.com; only the endpoint
differs. It models what the platform does where it matters to kobot:
- connections/open checks the app credentials and hands out a single-use ticket for the websocket;
- every CALLBACK frame stays "unacked" until the client answers code 200, and unacked frames are
  sent again on the next connection (a disconnect loses nothing);
- SYSTEM ping / disconnect frames; an abrupt drop of the socket;
- access tokens that expire (401 InvalidAuthentication), cards created and updated by outTrackId,
  robot API messages, session webhooks that expire;
- custom robot webhooks that verify the 加签 signature and its timestamp, enforce the send budget
  (errcode 130101) and the 20,000-byte limit (errcode 460101).
Every HTTP request is recorded; faults (status codes, Retry-After, slow answers) are injected on demand.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.peers.loopback import LOOPBACK, LoopbackPeer, Recording

SESSION_WEBHOOK_TTL_MS = 90 * 60 * 1000
"""Session webhooks live about 90 minutes on DingTalk."""

ROBOT_TIMESTAMP_SKEW_MS = 3600 * 1000
"""DingTalk refuses a robot post whose timestamp is more than an hour away from its clock."""

ROBOT_MAX_BYTES = 20_000


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
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        self.robots = robots if robots is not None else {secrets.token_hex(16): "SEC" + secrets.token_hex(24)}
        """Custom robots: access_token → signing secret."""
        self.robot_budget = robot_budget
        self.robot_window = robot_window
        self.token_ttl = token_ttl
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.requests: Recording[Recorded] = Recording()
        self.tokens: set[str] = set()
        self.cards: dict[str, Card] = {}
        self.sessions: dict[str, int] = {}
        self.robot_posts: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        self.robot_refusals: dict[str, list[int]] = collections.defaultdict(list)
        self._robot_sent_at: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self.tickets: set[str] = set()
        self.connections = 0
        self.subscriptions: list[dict[str, str]] = []
        self.acks: dict[str, list[Ack]] = collections.defaultdict(list)
        self.sent_frames: list[tuple[str, float]] = []
        """(messageId, monotonic time) of every frame written to a socket, re-sends included."""
        self._unacked: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self._ws: web.WebSocketResponse | None = None
        self._ws_request: web.Request | None = None

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
        return app

    async def before_shutdown(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    # --- test-facing views and faults ------------------------------------------------------------

    def requests_to(self, path: str) -> list[Recorded]:
        return self.requests.where(lambda r: r.path == path)

    def expire_tokens(self) -> None:
        """Every access token issued so far becomes invalid (as after its 2 hours)."""
        with self._lock:
            self.tokens.clear()

    def unacked(self) -> list[str]:
        return self.on_loop(lambda: list(self._unacked))

    def ack_for(self, message_id: str) -> Ack | None:
        with self._lock:
            acks = self.acks.get(message_id)
            return acks[-1] if acks else None

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

    def push_ping(self) -> str:
        return self._push("SYSTEM", "ping", {"opaque": secrets.token_hex(8)})

    def push_disconnect(self) -> str:
        """SYSTEM disconnect: the gateway asks the client to reconnect elsewhere."""
        return self._push("SYSTEM", "disconnect", {"reason": "server maintenance"})

    def drop(self) -> None:
        """Cut the socket without a close handshake (a network failure)."""
        self.on_loop(self._abort_socket)

    def _push(self, kind: str, topic: str, data: dict[str, Any], *, then_drop: bool = False) -> str:
        message_id = f"frame-{next(self._ids)}-{secrets.token_hex(4)}"
        frame = {
            "specVersion": "1.0",
            "type": kind,
            "headers": {
                "appId": "app01",
                "connectionId": f"conn-{self.connections}",
                "contentType": "application/json",
                "messageId": message_id,
                "time": str(int(time.time() * 1000)),
                "topic": topic,
            },
            "data": json.dumps(data, ensure_ascii=False),
        }

        async def deliver() -> None:
            if kind == "CALLBACK":
                self._unacked[message_id] = frame
            if self._ws is not None and not self._ws.closed:
                await self._send_frame(self._ws, frame)
                if then_drop:
                    self._abort_socket()

        self.run_on_loop(deliver())
        return message_id

    async def _send_frame(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        with self._lock:
            self.sent_frames.append((frame["headers"]["messageId"], time.monotonic()))
        await ws.send_str(json.dumps(frame, ensure_ascii=False))

    def _abort_socket(self) -> None:
        request = self._ws_request
        if request is not None and request.transport is not None:
            request.transport.abort()

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
        with self._lock:
            return request.headers.get("x-acs-dingtalk-access-token", "") in self.tokens

    @staticmethod
    def _open_api_error(status: int, code: str, message: str) -> web.Response:
        return web.json_response(
            {"code": code, "message": message, "requestid": secrets.token_hex(8)}, status=status
        )

    # --- stream gateway --------------------------------------------------------------------------

    async def _open_connection(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clientId") != self.client_id or not hmac.compare_digest(
            str(body.get("clientSecret", "")), self.client_secret
        ):
            return self._open_api_error(401, "InvalidAuthentication", "clientId or clientSecret is wrong")
        ticket = secrets.token_urlsafe(24)
        with self._lock:
            self.tickets.add(ticket)
            self.subscriptions = list(body.get("subscriptions", []))
        return web.json_response(
            {"endpoint": f"ws://{LOOPBACK}:{self.port}/gateway/connect", "ticket": ticket}
        )

    async def _gateway_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        with self._lock:
            valid = ticket in self.tickets
            self.tickets.discard(ticket)
        if not valid:
            return self._open_api_error(403, "InvalidTicket", "ticket is invalid or used")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        self._ws, self._ws_request = ws, request
        with self._lock:
            self.connections += 1
        for frame in list(self._unacked.values()):
            await self._send_frame(ws, frame)
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
            if code == 200:
                self._unacked.pop(message_id, None)
        if self._ws is ws:
            self._ws, self._ws_request = None, None
        return ws

    # --- Open API --------------------------------------------------------------------------------

    async def _access_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("appKey") != self.client_id or body.get("appSecret") != self.client_secret:
            return self._open_api_error(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
        token = secrets.token_hex(16)
        with self._lock:
            self.tokens.add(token)
        return web.json_response({"accessToken": token, "expireIn": self.token_ttl})

    async def _card_create(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._open_api_error(401, "InvalidAuthentication", "不合法的access_token")
        body = await request.json()
        params = body.get("cardData", {}).get("cardParamMap")
        space = str(body.get("openSpaceId", ""))
        if (
            not body.get("cardTemplateId")
            or not body.get("outTrackId")
            or not space.startswith(("dtv1.card//IM_GROUP.", "dtv1.card//IM_ROBOT."))
            or not isinstance(params, dict)
            or not all(isinstance(v, str) for v in params.values())
        ):
            return self._open_api_error(
                400, "param.invalid", "cardTemplateId, outTrackId, openSpaceId, cardParamMap"
            )
        with self._lock:
            self.cards[body["outTrackId"]] = Card(
                template_id=body["cardTemplateId"],
                open_space_id=space,
                params=dict(params),
                history=[dict(params)],
            )
        space_type, _, space_id = space.removeprefix("dtv1.card//").partition(".")
        return web.json_response(
            {
                "success": True,
                "result": {
                    "outTrackId": body["outTrackId"],
                    "deliverResults": [{"spaceType": space_type, "spaceId": space_id, "success": True}],
                },
            }
        )

    async def _card_update(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._open_api_error(401, "InvalidAuthentication", "不合法的access_token")
        body = await request.json()
        params = body.get("cardData", {}).get("cardParamMap")
        with self._lock:
            card = self.cards.get(str(body.get("outTrackId")))
            if card is None or not isinstance(params, dict):
                return self._open_api_error(400, "card.notFound", "no card with this outTrackId")
            card.params.update(params)
            card.history.append(dict(params))
        return web.json_response({"success": True, "result": True})

    async def _robot_api_send(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._open_api_error(401, "InvalidAuthentication", "不合法的access_token")
        body = await request.json()
        target = body.get("openConversationId") or body.get("userIds")
        if body.get("robotCode") != self.client_id or not target or not isinstance(body.get("msgParam"), str):
            return self._open_api_error(400, "param.invalid", "robotCode, target, msgKey, msgParam")
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
        if abs(time.time() * 1000 - timestamp) > ROBOT_TIMESTAMP_SKEW_MS:
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
        now = time.monotonic()
        with self._lock:
            sent = self._robot_sent_at[token]
            while sent and now - sent[0] >= self.robot_window:
                sent.popleft()
            if len(sent) >= self.robot_budget:
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
