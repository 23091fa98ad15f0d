"""A local WeCom (企业微信) peer: the server API kobot calls, and the callbacks WeCom makes.

A `LoopbackPeer`: it serves, on 127.0.0.1 in a thread of its own, what wechatpy and the adapter call under
`/cgi-bin/`: gettoken, message/send, message/update_template_card (one use per response code),
appchat/create and appchat/send, webhook/send (group robots) and smart-bot reply URLs (one use each).
Every request is recorded as it arrived. Fault injection: expire every issued token, answer the next
calls with HTTP 5xx, delay answers.

`callback_*` helpers build what WeCom POSTs at kobot: encrypted with wechatpy's WeChatCrypto and
signed exactly as the platform does (SHA1 over sorted token, timestamp, nonce and ciphertext).

Errcodes it answers with are WeCom's: 40013 bad corp id, 40001 bad secret, 40014 unknown token,
42001 expired token, 40058 markdown too long, 93000 bad robot key. Two are this peer's own choice because
the documentation names none: 40098 (response code unknown or used) and 40099 (invalid template card).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto
from wechatpy.utils import WeChatSigner

from tests.peers.loopback import LoopbackPeer, Recording

TOKEN_TTL = 7200
JSON_BODY: web.RequestKey[Any] = web.RequestKey("json_body", object)
ERR_RESPONSE_CODE = 40098
ERR_CARD = 40099
TASK_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-@")


@dataclass(frozen=True)
class Recorded:
    """One request as it came over the socket."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class Sent:
    """A message the peer accepted (what a WeCom user would see)."""

    api: str
    target: str
    payload: dict[str, Any]


@dataclass(eq=False)
class WeComPeer(LoopbackPeer):
    corp_id: str = "wwkobotpeer"
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    agent_id: int = 1000002
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    encoding_aes_key: str = field(default_factory=lambda: secrets.token_urlsafe(32)[:43])
    smart_bot_token: str = field(default_factory=lambda: secrets.token_hex(8))
    smart_bot_aes_key: str = field(default_factory=lambda: secrets.token_urlsafe(32)[:43])
    robot_keys: set[str] = field(default_factory=lambda: {secrets.token_hex(16)})

    requests: Recording[Recorded] = field(default_factory=Recording)
    sent: list[Sent] = field(default_factory=list)
    tokens_issued: int = 0
    _tokens: dict[str, float] = field(default_factory=dict)
    _response_codes: dict[str, str] = field(default_factory=dict)
    _task_ids: set[str] = field(default_factory=set)
    _reply_urls: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    thread_name = "wecom-peer"

    def __post_init__(self) -> None:
        LoopbackPeer.__init__(self)
        # the key is 43 characters of base64 without padding; urlsafe letters are not base64
        self.encoding_aes_key = self.encoding_aes_key.replace("-", "A").replace("_", "B")
        self.smart_bot_aes_key = self.smart_bot_aes_key.replace("-", "C").replace("_", "D")

    # -- addresses -------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"{self.origin}/cgi-bin/"

    @property
    def robot_key(self) -> str:
        return next(iter(self.robot_keys))

    # -- fault injection -------------------------------------------------------------------------
    def expire_tokens(self) -> None:
        """Every token issued so far is now expired (errcode 42001), as after 7200 s."""
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = 0.0

    def new_reply_url(self) -> str:
        """A smart-bot response_url: one POST, like WeCom's."""
        path = f"/smartbot/reply/{secrets.token_hex(8)}"
        with self._lock:
            self._reply_urls.add(path)
        return f"{self.origin}{path}"

    def click_response_code(self, task_id: str) -> str:
        """A fresh response code, as WeCom issues with each card click."""
        code = f"rc_{secrets.token_hex(10)}"
        with self._lock:
            self._response_codes[code] = task_id
        return code

    def requests_to(self, path_suffix: str) -> list[Recorded]:
        return self.requests.where(lambda r: r.path.endswith(path_suffix))

    # -- callbacks WeCom would make ----------------------------------------------------------------
    def app_crypto(self) -> WeChatCrypto:
        return WeChatCrypto(self.token, self.encoding_aes_key, self.corp_id)

    def smart_bot_crypto(self) -> WeChatCrypto:
        return WeChatCrypto(self.smart_bot_token, self.smart_bot_aes_key, "")

    def callback_url_check(
        self, *, echostr: str, smart_bot: bool = False, timestamp: int | None = None
    ) -> str:
        """The query string of WeCom's GET URL verification (echostr encrypted and signed)."""
        crypto = self.smart_bot_crypto() if smart_bot else self.app_crypto()
        ts, nonce = str(timestamp or int(time.time())), secrets.token_hex(5)
        encrypted = _encrypt(crypto, echostr)
        signature = sign(self.smart_bot_token if smart_bot else self.token, ts, nonce, encrypted)
        return urlencode({"msg_signature": signature, "timestamp": ts, "nonce": nonce, "echostr": encrypted})

    def callback_app(
        self, xml: str, *, timestamp: int | None = None, nonce: str | None = None
    ) -> tuple[str, str]:
        """(query string, XML body) of an app callback POST carrying `xml`."""
        ts, nonce = str(timestamp or int(time.time())), nonce or secrets.token_hex(5)
        encrypted = _encrypt(self.app_crypto(), xml)
        signature = sign(self.token, ts, nonce, encrypted)
        body = (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<AgentID><![CDATA[{self.agent_id}]]></AgentID><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        )
        return urlencode({"msg_signature": signature, "timestamp": ts, "nonce": nonce}), body

    def callback_smart_bot(
        self, payload: dict[str, Any], *, timestamp: int | None = None, nonce: str | None = None
    ) -> tuple[str, str]:
        """(query string, JSON body) of a smart-bot callback POST carrying `payload`."""
        ts, nonce = str(timestamp or int(time.time())), nonce or secrets.token_hex(5)
        encrypted = _encrypt(self.smart_bot_crypto(), json.dumps(payload, ensure_ascii=False))
        signature = sign(self.smart_bot_token, ts, nonce, encrypted)
        query = urlencode({"msg_signature": signature, "timestamp": ts, "nonce": nonce})
        return query, json.dumps({"encrypt": encrypted})

    def text_xml(self, *, user_id: str, content: str, msg_id: int | None = None) -> str:
        return (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<FromUserName><![CDATA[{user_id}]]></FromUserName><CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>"
            f"<MsgId>{msg_id or secrets.randbelow(10**15)}</MsgId><AgentID>{self.agent_id}</AgentID></xml>"
        )

    def card_click_xml(self, *, user_id: str, task_id: str, key: str) -> str:
        code = self.click_response_code(task_id)
        return (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<FromUserName><![CDATA[{user_id}]]></FromUserName><CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[template_card_event]]></Event>"
            f"<EventKey><![CDATA[{key}]]></EventKey><TaskId><![CDATA[{task_id}]]></TaskId>"
            f"<CardType><![CDATA[button_interaction]]></CardType><ResponseCode><![CDATA[{code}]]></ResponseCode>"
            f"<AgentID>{self.agent_id}</AgentID></xml>"
        )

    # -- the server ----------------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/cgi-bin/gettoken", self._gettoken)
        app.router.add_post("/cgi-bin/message/send", self._message_send)
        app.router.add_post("/cgi-bin/message/update_template_card", self._update_card)
        app.router.add_post("/cgi-bin/appchat/create", self._appchat_create)
        app.router.add_post("/cgi-bin/appchat/send", self._appchat_send)
        app.router.add_post("/cgi-bin/webhook/send", self._webhook_send)
        app.router.add_post("/smartbot/reply/{id}", self._smart_bot_reply)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.requests.add(Recorded(request.method, request.path, dict(request.query), body))
        fault = self.faults.take(request.path)
        await self.apply_delay(fault)
        if fault is not None and fault.status:
            return web.Response(status=fault.status, text="upstream unavailable")
        request[JSON_BODY] = body
        response: web.StreamResponse = await handler(request)
        return response

    def _token_error(self, request: web.Request) -> web.Response | None:
        token = request.query.get("access_token", "")
        with self._lock:
            expires = self._tokens.get(token)
        if expires is None:
            return _err(40014, "invalid access_token")
        if expires < time.time():
            return _err(42001, "access_token expired")
        return None

    async def _gettoken(self, request: web.Request) -> web.Response:
        if request.query.get("corpid") != self.corp_id:
            return _err(40013, "invalid corpid")
        if not secrets.compare_digest(request.query.get("corpsecret", ""), self.secret):
            return _err(40001, "invalid credential")
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.time() + TOKEN_TTL
            self.tokens_issued += 1
        return web.json_response(
            {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": TOKEN_TTL}
        )

    async def _message_send(self, request: web.Request) -> web.Response:
        if (error := self._token_error(request)) is not None:
            return error
        body: dict[str, Any] = request[JSON_BODY]
        if body.get("agentid") != self.agent_id:
            return _err(40056, "invalid agentid")
        if not body.get("touser"):
            return _err(40031, "invalid user list")
        msgtype = body.get("msgtype")
        answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok", "msgid": secrets.token_hex(12)}
        if msgtype == "markdown":
            if len(body["markdown"]["content"].encode()) > 4096:
                return _err(40058, "markdown content exceed max length")
        elif msgtype == "text":
            if len(body["text"]["content"].encode()) > 2048:
                return _err(40058, "content exceed max length")
        elif msgtype == "template_card":
            problem = self._card_problem(body["template_card"], new=True)
            if problem:
                return _err(ERR_CARD, problem)
            code = f"rc_{secrets.token_hex(10)}"
            with self._lock:
                self._task_ids.add(body["template_card"]["task_id"])
                self._response_codes[code] = body["template_card"]["task_id"]
            answer["response_code"] = code
        else:
            return _err(40008, "invalid message type")
        self.sent.append(Sent("message/send", str(body["touser"]), body))
        return web.json_response(answer)

    def _card_problem(self, card: dict[str, Any], *, new: bool) -> str | None:
        if card.get("card_type") != "button_interaction":
            return "card_type"
        task_id = str(card.get("task_id", ""))
        if not task_id or len(task_id.encode()) > 128 or not set(task_id) <= TASK_ID_CHARS:
            return "task_id"
        if new and task_id in self._task_ids:
            return "task_id already used"
        buttons = card.get("button_list") or []
        keys = [b.get("key", "") for b in buttons]
        if not 1 <= len(buttons) <= 6 or len(set(keys)) != len(keys):
            return "button_list"
        if any(not k or len(k.encode()) > 1024 for k in keys):
            return "button key"
        if len(card.get("horizontal_content_list") or []) > 6:
            return "horizontal_content_list"
        if not card.get("main_title", {}).get("title"):
            return "main_title"
        return None

    async def _update_card(self, request: web.Request) -> web.Response:
        if (error := self._token_error(request)) is not None:
            return error
        body: dict[str, Any] = request[JSON_BODY]
        with self._lock:
            task_id = self._response_codes.pop(str(body.get("response_code")), None)
        if task_id is None:
            return _err(ERR_RESPONSE_CODE, "invalid response_code")
        card = body.get("template_card")
        if card is not None:
            problem = self._card_problem(card, new=False)
            if problem or card.get("task_id") != task_id:
                return _err(ERR_CARD, problem or "task_id")
        elif not body.get("button", {}).get("replace_name"):
            return _err(ERR_CARD, "template_card or button required")
        self.sent.append(Sent("message/update_template_card", task_id, body))
        return web.json_response({"errcode": 0, "errmsg": "ok", "invaliduser": []})

    async def _appchat_create(self, request: web.Request) -> web.Response:
        if (error := self._token_error(request)) is not None:
            return error
        body: dict[str, Any] = request[JSON_BODY]
        if len(body.get("userlist") or []) < 2:
            return _err(40050, "chat member count less than 2")
        chat_id = body.get("chatid") or secrets.token_hex(8)
        return web.json_response({"errcode": 0, "errmsg": "ok", "chatid": chat_id})

    async def _appchat_send(self, request: web.Request) -> web.Response:
        if (error := self._token_error(request)) is not None:
            return error
        body: dict[str, Any] = request[JSON_BODY]
        if body.get("msgtype") == "markdown" and len(body["markdown"]["content"].encode()) > 4096:
            return _err(40058, "markdown content exceed max length")
        self.sent.append(Sent("appchat/send", str(body.get("chatid")), body))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _webhook_send(self, request: web.Request) -> web.Response:
        key = request.query.get("key", "")
        if key not in self.robot_keys:
            return _err(93000, "invalid webhook url")
        body: dict[str, Any] = request[JSON_BODY]
        if body.get("msgtype") == "markdown" and len(body["markdown"]["content"].encode()) > 4096:
            return _err(40058, "markdown content exceed max length")
        self.sent.append(Sent("webhook/send", key[:4], body))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _smart_bot_reply(self, request: web.Request) -> web.Response:
        with self._lock:
            known = request.path in self._reply_urls
            self._reply_urls.discard(request.path)
        if not known:
            return _err(ERR_RESPONSE_CODE, "response_url used or unknown")
        self.sent.append(Sent("smartbot/reply", request.path, request[JSON_BODY]))
        return web.json_response({"errcode": 0, "errmsg": "ok"})


def sign(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    signer = WeChatSigner()
    signer.add_data(token, timestamp, nonce, encrypted)
    return str(signer.signature)


def _encrypt(crypto: WeChatCrypto, plaintext: str) -> str:
    """Encrypted as WeCom does: random 16 bytes, length, plaintext, receive id, PKCS#7, AES-CBC, base64."""
    return str(PrpCrypto(crypto.key).encrypt(plaintext, crypto.corp_id).decode())


def _err(code: int, message: str) -> web.Response:
    return web.json_response({"errcode": code, "errmsg": message})
