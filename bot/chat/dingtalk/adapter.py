"""The DingTalk adapter: stream mode in, session webhook / cards / robot API / custom robots out.

Where a message goes:
- `robot:<name>` conversations → that custom robot's signed webhook, paced by its outbox; `send`
  returns once DingTalk accepted the post; a robot cannot edit, so `update` is a new post, and none
  when it would post what the message already shows apart from a job's running time and task;
- progress, approvals and anything with buttons → an interactive card, edited in place: the team's
  own template when `card_template_id` is set, else the SDK's public "Markdown with buttons" one;
- other answers while the conversation's session webhook is fresh → the session webhook;
- everything else → the robot API (group or one-to-one markdown), which needs no webhook that expires.

Alert posts are tagged (`send_tagged`, TaggedPosting): their card's outTrackId is a digest of the
app, the conversation and the tag, and kobot keeps the card's record before creating it. A post whose
answer or record was lost is then found by that id and edited in place (`update` creates the card only
when DingTalk refuses to update it, i.e. the first attempt never created it). Custom robots cannot be
tagged or edited: a robot post retried after its answer was lost shows twice (at least once).

Inbound, DingTalk pushes each bot message once and never again (acked or not, socket open or not),
so nothing here waits for a redelivery: a message kobot could not take is answered with a request
to send it again, where the frame says where to answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

from redis import Redis

from bot.chat.dingtalk import defaults, inbound, render
from bot.chat.dingtalk.openapi import OpenApiClient, OpenApiRefused
from bot.chat.dingtalk.robot import RobotOutbox
from bot.chat.dingtalk.stream import TOPIC_CARD, TOPIC_CHAT, StreamConnection
from bot.chat.registry import register_adapter
from bot.runtime import Runtime
from kobot import keys
from kobot.chat import Capabilities, ChatAdapter, InboundSink
from kobot.conversations import Conversation, MessageRef
from kobot.errors import DeliveryError
from kobot.messages import MessageKind, OutgoingMessage
from kobot.settings_dingtalk import DingTalkSettings

log = logging.getLogger(__name__)

ROBOT_PREFIX = "robot:"
"""Conversation ids naming a custom robot: `robot:<name>`."""

CARD_KINDS = frozenset({MessageKind.PROGRESS, MessageKind.APPROVAL})
"""Messages that become cards when a template is configured: they are edited or clicked later."""

VIA_CARD, VIA_ROBOT, VIA_WEBHOOK, VIA_API = "card", "robot", "webhook", "api"
"""MessageRef.extra["via"]: how a message was sent, which decides how it is edited."""

EXTRA_TAG = "tag"
"""MessageRef.extra key of a tagged card: its tag's generation-0 outTrackId."""

UNCONFIRMED = "unconfirmed"
"""MessageRef.extra key of a tagged card kobot set out to create but never saw created: `update` creates
it when DingTalk refuses to update it."""

EXTRA_SHOWN = "shown"
"""MessageRef.extra key of a robot post: a digest of what it posted, less the running time and task of a
job's progress. A robot cannot edit, so an update would be a new post: one that would say the same again
is skipped."""

_KEY_PREFIX = keys.DINGTALK_PREFIX


class DingTalkAdapter(ChatAdapter):
    """One DingTalk app (stream mode) plus its custom robots."""

    platform = defaults.PLATFORM
    call_budget_seconds = defaults.CALL_BUDGET_SECONDS

    def __init__(self, *, settings: DingTalkSettings, redis: Redis) -> None:
        self._settings = settings
        self._redis = redis
        self._template = settings.card_template_id or defaults.PUBLIC_CARD_TEMPLATE_ID
        self._card_params = (
            render.card_params if settings.card_template_id is not None else render.public_card_params
        )
        self._robot_code = settings.robot_code or settings.client_id
        self.robot_send_wait = defaults.ROBOT_SEND_WAIT_SECONDS
        """How long a robot `send` waits for DingTalk to accept the post (tests shorten it)."""
        self.capabilities = Capabilities(
            edits=True,
            buttons=True,
            threads=False,
            markdown=True,
            max_message_bytes=defaults.MESSAGE_MAX_BYTES,
        )
        self.api = OpenApiClient(
            endpoint=settings.openapi_endpoint,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
        )
        self.robots: dict[str, RobotOutbox] = {}
        self.stream: StreamConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handoffs: set[concurrent.futures.Future[None]] = set()
        self._frame_thread = _frame_thread()

    async def start(self, sink: InboundSink) -> None:
        """Connect to the stream gateway in its own thread; returns once connected or still trying."""
        await super().start(sink)
        self._loop = asyncio.get_running_loop()
        self._frame_thread = _frame_thread()  # a new one: stop() shut the last one down
        _point_sdk_at(self._settings.openapi_endpoint)
        self.stream = StreamConnection(
            endpoint=self._settings.openapi_endpoint,
            client_id=self._settings.client_id,
            client_secret=self._settings.client_secret,
            handle=self._on_frame,
        )
        if not await asyncio.to_thread(self.stream.start):
            log.warning("dingtalk stream gateway not reached yet; retrying in the background")

    async def stop(self) -> None:
        if self.stream is not None:
            await asyncio.to_thread(self.stream.stop)
            self.stream = None
        self._frame_thread.shutdown(wait=False, cancel_futures=True)
        for outbox in self.robots.values():
            if not await outbox.flush(timeout=defaults.ROBOT_STOP_FLUSH_SECONDS):
                log.error("dingtalk robot %s stopped with %d posts undelivered", outbox.name, outbox.waiting)
            await outbox.close()
        if self._handoffs:
            await asyncio.wait([asyncio.wrap_future(f) for f in list(self._handoffs)], timeout=5.0)
        await self.api.close()

    # --- outbound -------------------------------------------------------------------------------

    async def send(self, conversation: Conversation, message: OutgoingMessage) -> MessageRef:
        if conversation.conversation_id.startswith(ROBOT_PREFIX):
            return await self._send_robot(conversation.conversation_id, message, key=None)
        if message.kind in CARD_KINDS or message.buttons:
            return await self._send_card(conversation, message)
        webhook = _live_session_webhook(conversation)
        if webhook is not None and message.kind not in CARD_KINDS:
            for part in render.split_markdown(render.render_markdown(message)):
                await self.api.post_webhook(webhook, render.webhook_markdown(part, mentions=message.mentions))
            return self._ref(conversation, message_id=f"wh-{uuid.uuid4().hex}", via=VIA_WEBHOOK)
        return await self._send_api(conversation.conversation_id, _direct_user(conversation), message)

    async def update(self, ref: MessageRef, message: OutgoingMessage) -> MessageRef:
        via = ref.extra.get("via")
        if via == VIA_CARD:
            return await self._update_card(ref, message)
        if via == VIA_ROBOT:
            if ref.extra.get(EXTRA_SHOWN) == _shown_digest(message):
                return ref
            return await self._send_robot(ref.conversation_id, message, key=ref.message_id)
        # Markdown cannot be edited (a reply, or a message sent before cards were the default): each
        # stage is a new message, sent where no webhook can expire.
        return await self._send_api(ref.conversation_id, ref.extra.get(inbound.EXTRA_USER_ID), message)

    async def ask(self, conversation: Conversation, message: OutgoingMessage) -> MessageRef:
        """Buttons make `send` choose a card, so asking is sending."""
        return await self.send(conversation, message)

    async def send_tagged(
        self, conversation: Conversation, message: OutgoingMessage, *, tag: str
    ) -> MessageRef:
        """A card whose outTrackId comes from `tag` (TaggedPosting), so `find_tagged` can name it again.
        Custom robots (`robot:<name>`) cannot be tagged: they get a plain post, at least once."""
        if conversation.conversation_id.startswith(ROBOT_PREFIX):
            return await self.send(conversation, message)
        base = self.tagged_track_id(conversation, tag)
        out_track_id = await self._current_track_id(base)
        return await self._send_card(conversation, message, out_track_id=out_track_id, tag_base=base)

    async def find_tagged(
        self, conversation: Conversation, *, tag: str, since: datetime
    ) -> MessageRef | None:
        """The card `send_tagged` set out to create for `tag`, when kobot recorded it (the record is
        written before the card is created, so no record means no card). DingTalk has no way to list the
        cards in a conversation, so the ref may name a card that was never created: it is marked
        unconfirmed and `update` creates it then. None for custom robots, which cannot be tagged."""
        if conversation.conversation_id.startswith(ROBOT_PREFIX):
            return None
        out_track_id = await self._current_track_id(self.tagged_track_id(conversation, tag))
        record = await asyncio.to_thread(self._redis.get, f"{_KEY_PREFIX}:card:{out_track_id}")
        if not isinstance(record, bytes):
            return None
        _, ref = inbound.parse_card_record(record)
        return ref.model_copy(update={"extra": {**ref.extra, UNCONFIRMED: "1"}})

    def tagged_track_id(self, conversation: Conversation, tag: str, *, generation: int = 0) -> str:
        """The outTrackId of a tagged card: a SHA-256 hex digest, the form the SDK's own card ids take
        (dingtalk_stream card_replier.gen_card_id), of the app, the conversation and the tag, since
        outTrackIds are the app's and one tag is posted to several conversations. A later `generation`
        replaces a card DingTalk created but delivered to no one."""
        factor = f"{self._robot_code}\n{conversation.conversation_id}\n{conversation.thread_id or ''}\n{tag}"
        base = hashlib.sha256(factor.encode()).hexdigest()
        return base if generation == 0 else _generation_id(base, generation)

    async def _current_track_id(self, base: str) -> str:
        raw = await asyncio.to_thread(self._redis.get, f"{_KEY_PREFIX}:card-gen:{base}")
        generation = int(raw) if isinstance(raw, bytes) else 0
        return base if generation == 0 else _generation_id(base, generation)

    async def _next_generation(self, base: str) -> None:
        """The card under the current id reached no one: the tag's next post is a card of a new id, so a
        second create of an id DingTalk holds (whose effect is not documented) never happens."""
        key = f"{_KEY_PREFIX}:card-gen:{base}"
        pipe = self._redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, defaults.CARD_TTL_SECONDS)
        await asyncio.to_thread(pipe.execute)

    async def _update_card(self, ref: MessageRef, message: OutgoingMessage) -> MessageRef:
        body = render.card_update(self._card_params(message), out_track_id=ref.message_id)
        try:
            await self.api.call("PUT", "/v1.0/card/instances", body)
        except OpenApiRefused as exc:
            if not ref.extra.get(UNCONFIRMED) or exc.code not in defaults.CARD_NOT_FOUND_CODES:
                raise
            # DingTalk holds no card of this id: the first attempt ended before DingTalk made it, so it
            # is made now, under the same id. Any other refusal may come from a card DingTalk holds.
            record = await asyncio.to_thread(self._redis.get, f"{_KEY_PREFIX}:card:{ref.message_id}")
            if not isinstance(record, bytes):
                raise
            conversation, _ = inbound.parse_card_record(record)
            log.info("dingtalk tagged card %s was never created; creating it", ref.message_id)
            return await self._send_card(
                conversation, message, out_track_id=ref.message_id, tag_base=ref.extra.get(EXTRA_TAG)
            )
        extra = {k: v for k, v in ref.extra.items() if k != UNCONFIRMED}
        return ref.model_copy(update={"extra": extra})

    async def _send_card(
        self,
        conversation: Conversation,
        message: OutgoingMessage,
        *,
        out_track_id: str | None = None,
        tag_base: str | None = None,
    ) -> MessageRef:
        """Create and deliver a card. A tagged card (`tag_base`, its generation-0 id) keeps its record
        whatever DingTalk answers, since a call that failed on the way back may have created it, unless
        DingTalk said it reached no one: then the tag moves on to a new id."""
        tagged = out_track_id is not None
        out_track_id = out_track_id or f"kobot-{uuid.uuid4().hex}"
        user_id = _direct_user(conversation)
        body = render.card_create(
            self._card_params(message),
            template_id=self._template,
            out_track_id=out_track_id,
            robot_code=self._robot_code,
            conversation_id=conversation.conversation_id,
            user_id=user_id,
        )
        ref = self._ref(conversation, message_id=out_track_id, via=VIA_CARD, user_id=user_id)
        if tag_base is not None:
            ref = ref.model_copy(update={"extra": {**ref.extra, EXTRA_TAG: tag_base}})
        # Remember the card before it exists, so a click arriving at once is already trusted.
        card_key = f"{_KEY_PREFIX}:card:{out_track_id}"
        await asyncio.to_thread(
            self._redis.set, card_key, inbound.card_record(conversation, ref), ex=defaults.CARD_TTL_SECONDS
        )
        try:
            answer = await self.api.call("POST", "/v1.0/card/instances/createAndDeliver", body)
            _check_delivered(answer)
        except DeliveryError as exc:
            if not tagged or isinstance(exc, CardNotDelivered):
                await asyncio.to_thread(self._redis.delete, card_key)
            if tag_base is not None and isinstance(exc, CardNotDelivered):
                await self._next_generation(tag_base)
            raise
        return ref

    async def _send_api(
        self, conversation_id: str, user_id: str | None, message: OutgoingMessage
    ) -> MessageRef:
        result: dict[str, Any] = {}
        parts = render.split_markdown(
            render.render_markdown(message), limit_bytes=defaults.ROBOT_API_MSG_PARAM_MAX_BYTES
        )
        for part in parts:
            path, body = render.robot_api_markdown(
                part, robot_code=self._robot_code, conversation_id=conversation_id, user_id=user_id
            )
            result = await self.api.call("POST", path, body)
        message_id = str(result.get("processQueryKey") or f"api-{uuid.uuid4().hex}")
        extra = {"via": VIA_API} | ({inbound.EXTRA_USER_ID: user_id} if user_id else {})
        return MessageRef(
            platform=self.platform, conversation_id=conversation_id, message_id=message_id, extra=extra
        )

    async def _send_robot(
        self, conversation_id: str, message: OutgoingMessage, *, key: str | None
    ) -> MessageRef:
        name = conversation_id.removeprefix(ROBOT_PREFIX)
        outbox = self._outbox(name)
        payloads = _robot_payloads(message)
        message_id = key or outbox.new_key()
        await outbox.deliver(
            key=message_id, payloads=payloads, replace=key is not None, wait=self.robot_send_wait
        )
        return MessageRef(
            platform=self.platform,
            conversation_id=conversation_id,
            message_id=message_id,
            extra={"via": VIA_ROBOT, "robot": name, EXTRA_SHOWN: _shown_digest(message)},
        )

    def _outbox(self, name: str) -> RobotOutbox:
        if name not in self.robots:
            robot = self._settings.all_robots().get(name)
            if robot is None:
                raise DeliveryError(f"no DingTalk robot named {name!r} is configured")
            self.robots[name] = RobotOutbox(
                name=name,
                webhook_url=robot.webhook_url,
                secret=robot.secret,
                post=self.api.post_webhook,
                budget=self._settings.robot_budget_per_window,
                window=self._settings.robot_budget_window_seconds,
            )
        return self.robots[name]

    def _ref(
        self, conversation: Conversation, *, message_id: str, via: str, user_id: str | None = None
    ) -> MessageRef:
        extra = {"via": via} | ({inbound.EXTRA_USER_ID: user_id} if user_id else {})
        return MessageRef(
            platform=self.platform,
            conversation_id=conversation.conversation_id,
            message_id=message_id,
            extra=extra,
        )

    # --- inbound (runs on the stream thread) ------------------------------------------------------

    async def _on_frame(self, topic: str, data: dict[str, Any], frame_id: str) -> None:
        try:
            # The store calls block: they run on one thread of their own (in arrival order), so a
            # slow store never delays the acks and pings of other frames on the stream loop.
            loop = asyncio.get_running_loop()
            if topic == TOPIC_CHAT:
                await loop.run_in_executor(self._frame_thread, self._on_chat, data, frame_id)
            elif topic == TOPIC_CARD:
                await loop.run_in_executor(self._frame_thread, self._on_card, data, frame_id)
        except Exception:
            # DingTalk never pushes this frame again, so the sender is the only way to get it back:
            # ask them (the frame carries its conversation and session webhook; no store needed).
            conversation = inbound.conversation_of(data) if topic == TOPIC_CHAT else None
            if conversation is not None:
                self._to_main(self._answer(conversation, inbound.ASK_AGAIN))
            raise

    def _on_chat(self, data: dict[str, Any], frame_id: str) -> None:
        if not self._first_delivery(str(data.get("msgId") or frame_id)):
            return
        try:
            message = inbound.chat_message(data, now_ms=int(time.time() * 1000))
        except inbound.InboundRefused as refused:
            log.info("dingtalk message refused: %s", refused.user_message)
            if refused.conversation is not None:
                self._to_main(self._answer(refused.conversation, refused.user_message))
            return
        if message.identity.display_name:
            self._redis.set(
                f"{_KEY_PREFIX}:nick:{message.identity.user_id}",
                message.identity.display_name,
                ex=defaults.NICK_TTL_SECONDS,
            )
        self._to_main(self.sink.on_message(message))

    def _on_card(self, data: dict[str, Any], frame_id: str) -> None:
        try:
            click = inbound.card_click(data)
        except inbound.InboundRefused as refused:
            log.warning("dingtalk card callback refused: %s", refused.user_message)
            return
        if not self._first_delivery(f"click:{frame_id}" if frame_id else f"click:{click.out_track_id}"):
            return
        record = self._redis.get(f"{_KEY_PREFIX}:card:{click.out_track_id}")
        if not isinstance(record, bytes):
            log.warning("dingtalk click on a card kobot did not send (or forgot); ignored")
            return
        conversation, ref = inbound.parse_card_record(record)
        nick = self._redis.get(f"{_KEY_PREFIX}:nick:{click.user_id}")
        display_name = nick.decode() if isinstance(nick, bytes) else ""
        self._to_main(
            self.sink.on_click(
                inbound.button_click(click, conversation=conversation, ref=ref, display_name=display_name)
            )
        )

    def _first_delivery(self, delivery_id: str) -> bool:
        """True once per id: one message must act once, even if it reaches two connections or processes."""
        first = bool(
            self._redis.set(f"{_KEY_PREFIX}:seen:{delivery_id}", b"1", nx=True, ex=defaults.SEEN_TTL_SECONDS)
        )
        if not first:
            log.info("dingtalk frame delivered again; already handled")
        return first

    async def _answer(self, conversation: Conversation, text: str) -> None:
        await self.send(conversation, OutgoingMessage(title=text))

    def _to_main(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` on the app's loop (the sink lives there); keep it referenced until done."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        self._handoffs.add(future)
        future.add_done_callback(self._handoff_done)

    def _handoff_done(self, future: concurrent.futures.Future[None]) -> None:
        self._handoffs.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("dingtalk inbound event failed in the app", exc_info=future.exception())


def _frame_thread() -> concurrent.futures.ThreadPoolExecutor:
    """One thread for the blocking store work of inbound frames: off the stream loop, in arrival order."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dingtalk-frames")


def _live_session_webhook(conversation: Conversation) -> str | None:
    webhook = conversation.extra.get(inbound.EXTRA_SESSION_WEBHOOK)
    expires_ms = int(conversation.extra.get(inbound.EXTRA_SESSION_EXPIRES_MS, "0") or 0)
    if webhook and expires_ms - defaults.SESSION_WEBHOOK_MARGIN_MS > time.time() * 1000:
        return webhook
    return None


def _direct_user(conversation: Conversation) -> str | None:
    return conversation.extra.get(inbound.EXTRA_USER_ID) if conversation.is_direct else None


def _point_sdk_at(endpoint: str) -> None:
    """Set DINGTALK_OPENAPI_ENDPOINT before the SDK is first imported: the SDK copies it at import time
    into module constants and a class attribute. kobot's own calls take the endpoint from settings,
    so a later change of endpoint in the same process only affects the SDK's unused helpers."""
    if "dingtalk_stream" not in sys.modules:
        os.environ["DINGTALK_OPENAPI_ENDPOINT"] = endpoint
        import dingtalk_stream  # noqa: F401


def _check_delivered(answer: dict[str, Any]) -> None:
    """createAndDeliver answers HTTP 200 with a result per target: a card no target received is not sent."""
    result = answer.get("result")
    results = result.get("deliverResults") if isinstance(result, dict) else None
    if not isinstance(results, list):
        return
    failed = [r for r in results if isinstance(r, dict) and r.get("success") is not True]
    if failed and len(failed) == len(results):
        reasons = "; ".join(str(r.get("errorMsg") or "no reason given") for r in failed)
        raise CardNotDelivered(f"DingTalk created the card but did not deliver it: {reasons}")


class CardNotDelivered(DeliveryError):
    """createAndDeliver made the card but delivered it to no target: nobody sees it."""


def _robot_payloads(message: OutgoingMessage) -> list[dict[str, Any]]:
    """The posts a custom robot makes of `message` (its parts, in order)."""
    return [
        render.webhook_markdown(part, mentions=message.mentions)
        for part in render.split_markdown(render.render_markdown(message))
    ]


def _shown_digest(message: OutgoingMessage) -> str:
    """What a robot post says, leaving out what only ticks: a job's running time and its current Ansible
    task. A robot cannot edit, so each update is a new post; one per task or per progress tick would bury
    the channel, while a new step, state or outcome is news."""
    if message.progress is not None:
        steady = message.progress.model_copy(update={"elapsed_seconds": 0.0, "task": None})
        message = message.model_copy(update={"progress": steady})
    payloads = _robot_payloads(message)
    return hashlib.sha256(json.dumps(payloads, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


def _generation_id(base: str, generation: int) -> str:
    return hashlib.sha256(f"{base}\n{generation}".encode()).hexdigest()


@register_adapter(defaults.PLATFORM)
def build(runtime: Runtime) -> DingTalkAdapter | None:
    """The adapter when `settings.dingtalk` is set, else None."""
    if runtime.settings.dingtalk is None:
        return None
    return DingTalkAdapter(settings=runtime.settings.dingtalk, redis=runtime.redis)
