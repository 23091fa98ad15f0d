"""A local WeCom (企业微信) peer: the server API kobot calls, and the callbacks WeCom makes.

A `LoopbackPeer`: it serves, on 127.0.0.1 in a thread of its own, what wechatpy and the adapter call under
`/cgi-bin/`: gettoken, message/send, message/update_template_card, user/get, appchat/create, appchat/get,
appchat/send, webhook/send (group robots) and smart-bot reply URLs. Every request is recorded as it
arrived; what a person would see is in `sent`, what WeCom accepted and threw away is in `dropped`. Time is
a `PeerClock` the test moves (`clock.advance`), so expiries and hourly budgets take no waiting.

Behaviour and where it comes from:
- errcodes: the global error list (developer.work.weixin.qq.com/document/path/90455): 40001 bad secret,
  40013 bad corp id, 40014 unknown token, 42001 expired token (wechatpy's WeChatErrorCode has these
  three), 40003 invalid userid, 40008 bad msgtype, 40050 chatid does not exist, 40056 bad agentid,
  40058 invalid parameter, 60011 no permission for the contact, 60111 userid not found, 81013 every
  recipient invalid, 86006 bad chat member count (the errmsg WeCom returns for it is in a public thread on
  developers.weixin.qq.com), 93000 bad robot key. Rate errcodes 45009/45011/45033 (45009 and 45011 are
  also in wechatpy's constants) are not sent by default; `throttle_next` queues them.
- message/send (document/path/90236): beyond 30 messages a minute or 1,000 an hour from the app to one
  person, WeCom drops the message and still answers errcode 0 ("超过部分会被丢弃不下发"): recorded in
  `dropped`. Recipients outside the directory or the app's visible range come back in `invaliduser`
  (errcode 0), all of them invalid is 81013. Markdown is refused beyond 2,048 bytes: the figure app
  message clients quote from the same page ("markdown内容，最长不超过2048个字节"; the stored copy of the
  page this peer was checked against ends before its markdown section, so the figure is the clients'
  quotation of it); 4,096 bytes is the group robot's figure (document/path/91770) and applies to
  webhook/send only.
- message/send duplicate check (document/path/90236): with `enable_duplicate_check` 1, "在一定时间间隔内，
  同样内容（请求json）的消息，不会重复收到"; the interval is `duplicate_check_interval`, 1,800 s by default,
  at most 4 hours. The page says only that the person does not get the repeat, not what the call answers:
  the peer answers errcode 0 "ok" with no msgid or response_code (kobot relies on nothing but the
  errcode) and records the repeat in `duplicates`, not in `sent`. It compares whole requests (sorted JSON)
  and checks them before anything else, task ids included. appchat/send and webhook/send document no such
  check (document/path/90248, 91770): they post every request.
- template_card task ids: one use per app; message/send refuses a used, empty or too long one with
  errcode 42014 "taskid has existed or empty or exceed max len" (global error list; the errmsg is
  quoted in a developers.weixin.qq.com thread). The duplicate check comes first, so a repeat within
  the interval is dropped, and one after it is refused.
- response_code (document/path/94888): one use, within 72 h. The errcode for a spent or expired one is
  not documented: the peer answers 40058 (invalid parameter), as it does for a card it would not take
  (it used to answer made-up 40098/40099).
- appchat (document/path/90248): only chats the app created; a member gets at most 200 messages a minute
  from the app in its groups, the rest dropped silently.
- group robot: 20 messages a minute per robot, beyond that errcode 45009 (document/path/91770).
- smart-bot reply URL (document/path/101031 and the smart-bot callback pages): one POST, within an
  hour; past that the peer answers 40058 (the real answer is not documented).
- callbacks (`deliver_callback`): WeCom waits 5 s for an answer and tries three more times (callback
  documentation, PROTOCOLS.md); each try carries the same MsgId. That each try is signed anew (fresh
  timestamp and nonce) is this peer's assumption: the documentation does not say.
- crypto: the peer encrypts with wechatpy's PrpCrypto, the same code kobot decrypts with, so the
  known-answer tests (tests/chat/wecom/test_crypto_sample_peer.py) check both against WeCom's published
  sample instead.

Left out: the per-app daily quota (account limit × 200 person-times), toparty/totag recipients,
duplicate-check intervals over 4 hours (the refusal is not documented), media uploads, other card
types, passive replies in callback answers, the smart-bot stream replies, and IP allow-lists (企业可信IP).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto
from wechatpy.utils import WeChatSigner

from tests.peers.clock import PeerClock
from tests.peers.loopback import ANY_PATH, Fault, LoopbackPeer, Recording

TOKEN_TTL = 7200
"""gettoken: expires_in."""
RESPONSE_CODE_TTL = 72 * 3600
"""A response code may update its card once, within this many seconds."""
REPLY_URL_TTL = 3600
"""A smart-bot response_url takes one POST within this many seconds."""
CALLBACK_DEADLINE = 5.0
"""WeCom waits this long for a callback's answer before it tries again."""
CALLBACK_RETRIES = 3
"""How many more times WeCom delivers an unanswered callback."""
USER_PER_MINUTE = 30
USER_PER_HOUR = 1000
GROUP_MEMBER_PER_MINUTE = 200
ROBOT_PER_MINUTE = 20
APP_MARKDOWN_MAX_BYTES = 2048
ROBOT_MARKDOWN_MAX_BYTES = 4096
TEXT_MAX_BYTES = 2048
DUPLICATE_CHECK_DEFAULT_SECONDS = 1800
"""message/send's duplicate check interval when the request names none (document/path/90236)."""

ERR_INVALID_PARAMETER = 40058
ERR_CHAT_NOT_FOUND = 40050
ERR_ALL_RECIPIENTS_INVALID = 81013
ERR_CHAT_MEMBER_COUNT = 86006
ERR_API_LIMIT = 45009
ERR_TASK_ID = 42014
"""A template card's task_id used before by the app, empty or too long (global error list; the errmsg is
quoted in a public thread on developers.weixin.qq.com)."""
TASK_ID_USED = "task_id already used"
TASK_ID_EMPTY_OR_LONG = "task_id empty or too long"
TASK_ID_PROBLEMS = (TASK_ID_USED, TASK_ID_EMPTY_OR_LONG)
"""Card problems message/send answers with errcode 42014, not 40058."""
JSON_BODY: web.RequestKey[Any] = web.RequestKey("json_body", object)
TASK_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-@")

DIRECTORY = {
    "alice": "Alice Wang",
    "bob": "Bob Li",
    "carol": "Carol Zhang",
    "dave": "Dave Chen",
    "erin": "Erin Liu",
    "zhangsan": "张三",
    "lisi": "李四",
}
"""Members of the peer's company (userid → name); the app may see all of them unless told otherwise."""


@dataclass(frozen=True)
class Recorded:
    """One request as it came over the socket."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class Sent:
    """A message the peer accepted (what a WeCom user would see), or accepted and dropped."""

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
    directory: dict[str, str] = field(default_factory=lambda: dict(DIRECTORY))
    hidden: set[str] = field(default_factory=set)
    """Members outside the app's visible range: user/get says 60011, message/send lists them invalid."""
    clock: PeerClock = field(default_factory=PeerClock)

    requests: Recording[Recorded] = field(default_factory=Recording)
    sent: list[Sent] = field(default_factory=list)
    duplicates: list[Sent] = field(default_factory=list)
    """message/send requests the duplicate check kept from being shown again."""
    dropped: list[Sent] = field(default_factory=list)
    tokens_issued: int = 0
    _tokens: dict[str, float] = field(default_factory=dict)
    _response_codes: dict[str, tuple[str, float]] = field(default_factory=dict)
    _task_ids: set[str] = field(default_factory=set)
    _checked_requests: dict[str, float] = field(default_factory=dict)
    _reply_urls: dict[str, float] = field(default_factory=dict)
    _chats: dict[str, list[str]] = field(default_factory=dict)
    _deliveries: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    thread_name = "wecom-peer"

    def __post_init__(self) -> None:
        LoopbackPeer.__init__(self)
        # the key is 43 characters of base64 without padding; urlsafe letters are not base64
        self.encoding_aes_key = self.encoding_aes_key.replace("-", "A").replace("_", "B")
        self.smart_bot_aes_key = self.smart_bot_aes_key.replace("-", "C").replace("_", "D")

    # -- addresses and time ----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"{self.origin}/cgi-bin/"

    @property
    def robot_key(self) -> str:
        return next(iter(self.robot_keys))

    def now(self) -> float:
        """WeCom's clock (epoch seconds): real time plus whatever the test advanced."""
        return self.clock.wall_ms() / 1000

    async def sleep(self, seconds: float) -> None:
        """A sleep for the code under test that moves this clock instead of waiting."""
        self.clock.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    # -- fault injection -------------------------------------------------------------------------
    def expire_tokens(self) -> None:
        """Every token issued so far is now expired (errcode 42001), as after 7200 s."""
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = 0.0

    def throttle_next(self, count: int = 1, *, errcode: int = ERR_API_LIMIT, path: str = ANY_PATH) -> None:
        """The next `count` API calls (to `path`, or any) answer a frequency errcode (45009 by default)."""
        body = {"errcode": errcode, "errmsg": "api freq out of limit"}
        self.faults.add(Fault(status=200, times=count, body=body), path=path)

    def new_reply_url(self) -> str:
        """A smart-bot response_url: one POST within the hour, like WeCom's."""
        path = f"/smartbot/reply/{secrets.token_hex(8)}"
        with self._lock:
            self._reply_urls[path] = self.now() + REPLY_URL_TTL
        return f"{self.origin}{path}"

    def click_response_code(self, task_id: str) -> str:
        """A fresh response code, as WeCom issues with each card click."""
        code = f"rc_{secrets.token_hex(10)}"
        with self._lock:
            self._response_codes[code] = (task_id, self.now() + RESPONSE_CODE_TTL)
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
        ts, nonce = str(timestamp or int(self.now())), secrets.token_hex(5)
        encrypted = _encrypt(crypto, echostr)
        signature = sign(self.smart_bot_token if smart_bot else self.token, ts, nonce, encrypted)
        return urlencode({"msg_signature": signature, "timestamp": ts, "nonce": nonce, "echostr": encrypted})

    def callback_app(
        self, xml: str, *, timestamp: int | None = None, nonce: str | None = None
    ) -> tuple[str, str]:
        """(query string, XML body) of an app callback POST carrying `xml`."""
        ts, nonce = str(timestamp or int(self.now())), nonce or secrets.token_hex(5)
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
        ts, nonce = str(timestamp or int(self.now())), nonce or secrets.token_hex(5)
        encrypted = _encrypt(self.smart_bot_crypto(), json.dumps(payload, ensure_ascii=False))
        signature = sign(self.smart_bot_token, ts, nonce, encrypted)
        query = urlencode({"msg_signature": signature, "timestamp": ts, "nonce": nonce})
        return query, json.dumps({"encrypt": encrypted})

    async def deliver_callback(
        self, xml: str, post: Callable[[str, str], Awaitable[int]], *, deadline: float = CALLBACK_DEADLINE
    ) -> list[int | None]:
        """Deliver an app callback as WeCom does: wait `deadline` for an answer, then try again, three more
        times at most, each try signed anew. `post(query, body)` returns the HTTP status; the answers (None
        for a try that got no answer in time) are returned in order."""
        answers: list[int | None] = []
        for _ in range(1 + CALLBACK_RETRIES):
            query, body = self.callback_app(xml)
            try:
                status: int | None = await asyncio.wait_for(post(query, body), timeout=deadline)
            except (TimeoutError, OSError):
                status = None
            answers.append(status)
            if status == 200:
                break
        return answers

    def text_xml(self, *, user_id: str, content: str, msg_id: int | None = None) -> str:
        return (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<FromUserName><![CDATA[{user_id}]]></FromUserName><CreateTime>{int(self.now())}</CreateTime>"
            f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>"
            f"<MsgId>{msg_id or secrets.randbelow(10**15)}</MsgId><AgentID>{self.agent_id}</AgentID></xml>"
        )

    def card_click_xml(self, *, user_id: str, task_id: str, key: str) -> str:
        code = self.click_response_code(task_id)
        return (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<FromUserName><![CDATA[{user_id}]]></FromUserName><CreateTime>{int(self.now())}</CreateTime>"
            f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[template_card_event]]></Event>"
            f"<EventKey><![CDATA[{key}]]></EventKey><TaskId><![CDATA[{task_id}]]></TaskId>"
            f"<CardType><![CDATA[button_interaction]]></CardType><ResponseCode><![CDATA[{code}]]></ResponseCode>"
            f"<AgentID>{self.agent_id}</AgentID></xml>"
        )

    def add_chat(self, chat_id: str, members: list[str]) -> None:
        """An app group chat as if the app had created it earlier (appchat/create)."""
        with self._lock:
            self._chats[chat_id] = list(members)

    def chat_members(self, chat_id: str) -> list[str]:
        with self._lock:
            return list(self._chats.get(chat_id, []))

    # -- the server ----------------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/cgi-bin/gettoken", self._gettoken)
        app.router.add_post("/cgi-bin/message/send", self._message_send)
        app.router.add_post("/cgi-bin/message/update_template_card", self._update_card)
        app.router.add_get("/cgi-bin/user/get", self._user_get)
        app.router.add_post("/cgi-bin/appchat/create", self._appchat_create)
        app.router.add_get("/cgi-bin/appchat/get", self._appchat_get)
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
        if fault is not None and fault.body is not None:
            return web.json_response(fault.body, status=fault.status or 200)
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
        if expires < self.now():
            return _err(42001, "access_token expired")
        return None

    def _within_budget(self, who: str, budget: tuple[tuple[float, int], ...]) -> bool:
        """Count one delivery to `who` if every (window, count) budget has room; False when it has none."""
        now = self.now()
        with self._lock:
            times = [t for t in self._deliveries.get(who, []) if t > now - max(w for w, _ in budget)]
            if any(len([t for t in times if t > now - window]) >= count for window, count in budget):
                self._deliveries[who] = times
                return False
            times.append(now)
            self._deliveries[who] = times
            return True

    async def _gettoken(self, request: web.Request) -> web.Response:
        if request.query.get("corpid") != self.corp_id:
            return _err(40013, "invalid corpid")
        if not secrets.compare_digest(request.query.get("corpsecret", ""), self.secret):
            return _err(40001, "invalid credential")
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = self.now() + TOKEN_TTL
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
        users = [u for u in str(body.get("touser") or "").split("|") if u]
        if not users:
            return _err(40031, "invalid user list")
        fingerprint = json.dumps(body, sort_keys=True, ensure_ascii=False)
        interval = float(body.get("duplicate_check_interval") or DUPLICATE_CHECK_DEFAULT_SECONDS)
        checked = body.get("enable_duplicate_check") == 1
        with self._lock:
            first = self._checked_requests.get(fingerprint) if checked else None
            if first is not None and self.now() - first < interval:
                self.duplicates.append(Sent("message/send", "|".join(users), body))
                return web.json_response({"errcode": 0, "errmsg": "ok"})
        msgtype = body.get("msgtype")
        answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok", "msgid": secrets.token_hex(12)}
        if msgtype == "markdown":
            if len(body["markdown"]["content"].encode()) > APP_MARKDOWN_MAX_BYTES:
                return _err(ERR_INVALID_PARAMETER, "markdown content exceed max length")
        elif msgtype == "text":
            if len(body["text"]["content"].encode()) > TEXT_MAX_BYTES:
                return _err(ERR_INVALID_PARAMETER, "content exceed max length")
        elif msgtype == "template_card":
            problem = self._card_problem(body["template_card"], new=True)
            if problem in TASK_ID_PROBLEMS:
                return _err(ERR_TASK_ID, "taskid has existed or empty or exceed max len")
            if problem:
                return _err(ERR_INVALID_PARAMETER, f"invalid template_card: {problem}")
        else:
            return _err(40008, "invalid message type")
        valid = [u for u in users if u in self.directory and u not in self.hidden]
        invalid = [u for u in users if u not in valid]
        if not valid:
            return _err(ERR_ALL_RECIPIENTS_INVALID, "all touser, toparty and totag invalid")
        if msgtype == "template_card":
            code = f"rc_{secrets.token_hex(10)}"
            task_id = body["template_card"]["task_id"]
            with self._lock:
                self._task_ids.add(task_id)
                self._response_codes[code] = (task_id, self.now() + RESPONSE_CODE_TTL)
            answer["response_code"] = code
        budget = ((60.0, USER_PER_MINUTE), (3600.0, USER_PER_HOUR))
        delivered = [u for u in valid if self._within_budget(f"user:{u}", budget)]
        for user in valid:
            if user not in delivered:
                self.dropped.append(Sent("message/send", user, body))
        if delivered:
            self.sent.append(Sent("message/send", "|".join(delivered), body))
        if checked:
            with self._lock:
                self._checked_requests.setdefault(fingerprint, self.now())
        if invalid:
            answer["invaliduser"] = "|".join(u.lower() for u in invalid)
        return web.json_response(answer)

    def _card_problem(self, card: dict[str, Any], *, new: bool) -> str | None:
        if card.get("card_type") != "button_interaction":
            return "card_type"
        task_id = str(card.get("task_id", ""))
        if not task_id or len(task_id.encode()) > 128:
            return TASK_ID_EMPTY_OR_LONG
        if not set(task_id) <= TASK_ID_CHARS:
            return "task_id"
        if new and task_id in self._task_ids:
            return TASK_ID_USED
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
            issued = self._response_codes.pop(str(body.get("response_code")), None)
        if issued is None or issued[1] < self.now():
            return _err(ERR_INVALID_PARAMETER, "invalid response_code")
        task_id = issued[0]
        card = body.get("template_card")
        if card is not None:
            problem = self._card_problem(card, new=False)
            if problem or card.get("task_id") != task_id:
                return _err(ERR_INVALID_PARAMETER, f"invalid template_card: {problem or 'task_id'}")
        elif not body.get("button", {}).get("replace_name"):
            return _err(ERR_INVALID_PARAMETER, "template_card or button required")
        users = [str(u) for u in body.get("userids") or []]
        invalid = [u for u in users if u not in self.directory or u in self.hidden]
        self.sent.append(Sent("message/update_template_card", task_id, body))
        return web.json_response({"errcode": 0, "errmsg": "ok", "invaliduser": invalid})

    async def _user_get(self, request: web.Request) -> web.Response:
        if (error := self._token_error(request)) is not None:
            return error
        user_id = request.query.get("userid", "")
        if user_id not in self.directory:
            return _err(60111, "userid not found")
        if user_id in self.hidden:
            return _err(60011, "no privilege to access/modify contact/party/agent")
        return web.json_response(
            {"errcode": 0, "errmsg": "ok", "userid": user_id, "name": self.directory[user_id], "status": 1}
        )

    async def _appchat_create(self, request: web.Request) -> web.Response:
        if (error := self._token_error(request)) is not None:
            return error
        body: dict[str, Any] = request[JSON_BODY]
        members = [str(u) for u in body.get("userlist") or []]
        if not 2 <= len(members) <= 2000:
            return _err(ERR_CHAT_MEMBER_COUNT, "invalid chat member list size")
        if any(u not in self.directory for u in members):
            return _err(40003, "invalid userid")
        chat_id = body.get("chatid") or secrets.token_hex(8)
        with self._lock:
            self._chats[chat_id] = members
        return web.json_response({"errcode": 0, "errmsg": "ok", "chatid": chat_id})

    async def _appchat_get(self, request: web.Request) -> web.Response:
        if (error := self._token_error(request)) is not None:
            return error
        chat_id = request.query.get("chatid", "")
        members = self.chat_members(chat_id)
        if not members:
            return _err(ERR_CHAT_NOT_FOUND, "chatid not found")
        info = {"chatid": chat_id, "name": chat_id, "owner": members[0], "userlist": members}
        return web.json_response({"errcode": 0, "errmsg": "ok", "chat_info": info})

    async def _appchat_send(self, request: web.Request) -> web.Response:
        if (error := self._token_error(request)) is not None:
            return error
        body: dict[str, Any] = request[JSON_BODY]
        chat_id = str(body.get("chatid") or "")
        members = self.chat_members(chat_id)
        if not members:
            return _err(ERR_CHAT_NOT_FOUND, "chatid not found")
        if body.get("msgtype") == "markdown":
            if len(body["markdown"]["content"].encode()) > APP_MARKDOWN_MAX_BYTES:
                return _err(ERR_INVALID_PARAMETER, "markdown content exceed max length")
        elif body.get("msgtype") != "text":
            return _err(40008, "invalid message type")
        budget = ((60.0, GROUP_MEMBER_PER_MINUTE),)
        seen_by = [m for m in members if self._within_budget(f"member:{m}", budget)]
        for member in members:
            if member not in seen_by:
                self.dropped.append(Sent("appchat/send", f"{chat_id}:{member}", body))
        if seen_by:
            self.sent.append(Sent("appchat/send", chat_id, body))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _webhook_send(self, request: web.Request) -> web.Response:
        key = request.query.get("key", "")
        if key not in self.robot_keys:
            return _err(93000, "invalid webhook url")
        body: dict[str, Any] = request[JSON_BODY]
        markdown = body.get("markdown") if body.get("msgtype") == "markdown" else None
        if markdown is not None and len(markdown["content"].encode()) > ROBOT_MARKDOWN_MAX_BYTES:
            return _err(ERR_INVALID_PARAMETER, "markdown content exceed max length")
        if not self._within_budget(f"robot:{key}", ((60.0, ROBOT_PER_MINUTE),)):
            return _err(ERR_API_LIMIT, "api freq out of limit")
        self.sent.append(Sent("webhook/send", key[:4], body))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _smart_bot_reply(self, request: web.Request) -> web.Response:
        with self._lock:
            expires = self._reply_urls.pop(request.path, None)
        if expires is None or expires < self.now():
            return _err(ERR_INVALID_PARAMETER, "response_url used, expired or unknown")
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
