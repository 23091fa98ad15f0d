"""The WeCom (企业微信) adapter: app callbacks and smart-bot @-mentions in, app messages, app group
chats, group robots and smart-bot replies out.

A template card can be updated once per response code, so progress on WeCom is a new message per
stage (a new step or the outcome) and an approval card is updated once, when it is decided. Conversation
ids are described in `inbound`. People are named through the contacts API (`contacts`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from redis import Redis
from wechatpy.enterprise.crypto import WeChatCrypto

from bot.chat.registry import register_adapter
from bot.chat.wecom import defaults, inbound
from bot.chat.wecom.callback import CallbackGuard
from bot.chat.wecom.client import KobotWeChatClient, Sleep, WeComApi
from bot.chat.wecom.contacts import Contacts
from bot.chat.wecom.outbound import Outbound
from bot.chat.wecom.render import render_card, stage_of
from bot.chat.wecom.routes import build_router
from bot.chat.wecom.state import WeComState
from bot.runtime import Runtime
from kobot.chat import Capabilities, ChatAdapter, InboundSink
from kobot.conversations import Conversation, MessageRef
from kobot.errors import DeliveryError
from kobot.messages import OutgoingMessage, Tone
from kobot.settings_wecom import WeComSettings

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 5.0
"""How long stopping waits for acknowledged events to reach the dispatcher."""

EXPIRED_BUTTON = OutgoingMessage(
    title="This button has expired",
    tone=Tone.WARNING,
    status="Run the command again to get a fresh card.",
)


class WeComAdapter(ChatAdapter):
    platform = defaults.PLATFORM
    capabilities = Capabilities(
        edits=True,
        buttons=True,
        threads=False,
        markdown=True,
        max_message_bytes=defaults.MARKDOWN_MAX_BYTES,
        edits_per_message=1,
    )
    call_budget_seconds = defaults.SEND_BUDGET_SECONDS

    def __init__(
        self,
        *,
        settings: WeComSettings,
        redis: Redis,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """`clock` and `sleep` pace sends and time callbacks; tests pass a clock they can move."""
        self.settings = settings
        self.state = WeComState(redis=redis)
        self.api = WeComApi(client=KobotWeChatClient(settings=settings, redis=redis), sleep=sleep)
        self.outbound = Outbound(settings=settings, api=self.api, state=self.state, clock=clock)
        self.contacts = Contacts(api=self.api, state=self.state)
        self._tasks: set[asyncio.Task[None]] = set()
        self.app_guard = CallbackGuard(
            crypto=WeChatCrypto(
                settings.token.get_secret_value(),
                settings.encoding_aes_key.get_secret_value(),
                settings.corp_id,
            ),
            state=self.state,
            endpoint="app",
            clock=clock,
        )
        self.smart_bot_guard: CallbackGuard | None = None
        if settings.smart_bot_token is not None and settings.smart_bot_encoding_aes_key is not None:
            self.smart_bot_guard = CallbackGuard(
                crypto=WeChatCrypto(
                    settings.smart_bot_token.get_secret_value(),
                    settings.smart_bot_encoding_aes_key.get_secret_value(),
                    "",
                ),
                state=self.state,
                endpoint="smartbot",
                clock=clock,
            )

    def router(self) -> APIRouter:
        return build_router(
            app_guard=self.app_guard,
            on_app_plaintext=self._on_app_plaintext,
            smart_bot_guard=self.smart_bot_guard,
            on_smart_bot_plaintext=self._on_smart_bot_plaintext,
        )

    async def stop(self) -> None:
        # Events already acknowledged to WeCom (their retries are discarded as seen) get a grace period
        # to reach the dispatcher before anything is cancelled.
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.outbound.close()

    async def send(self, conversation: Conversation, message: OutgoingMessage) -> MessageRef:
        return await self.outbound.send(conversation.conversation_id, message)

    async def send_tagged(
        self, conversation: Conversation, message: OutgoingMessage, *, tag: str
    ) -> MessageRef:
        """A post WeCom takes once (TaggedPosting): to a one-to-one app session it goes under WeCom's
        duplicate check, so a retry of a post whose answer was lost is not shown again. App group chats,
        group robots and smart-bot replies have no such check: a retry there may show twice."""
        return await self.outbound.send(conversation.conversation_id, message, tag=tag)

    async def find_tagged(
        self, conversation: Conversation, *, tag: str, since: datetime
    ) -> MessageRef | None:
        """Always None: WeCom cannot list what an app sent. The caller posts again through `send_tagged`,
        and WeCom's duplicate check keeps a post that already landed from showing twice."""
        return None

    async def update(self, ref: MessageRef, message: OutgoingMessage) -> MessageRef:
        """A card is updated once (its response code); otherwise a new stage gets a new message."""
        stage = stage_of(message)
        if ref.extra.get("stage") == stage:
            return ref
        kind, _, target = ref.conversation_id.partition(":")
        if ref.extra.get("card") and kind == inbound.USER:
            code = self.state.take_response_code(task_id=ref.message_id)
            if code is not None and await self._update_card(ref, message, user_id=target, code=code):
                return ref.model_copy(update={"extra": {**ref.extra, "stage": stage}})
        return await self.outbound.send(ref.conversation_id, message)

    async def _update_card(
        self, ref: MessageRef, message: OutgoingMessage, *, user_id: str, code: str
    ) -> bool:
        task_id = ref.message_id
        if message.buttons:
            keys = self.state.remember_card(task_id=task_id, buttons=message.buttons)
            card = render_card(message, task_id=task_id, keys=keys)
        else:
            old = self.state.card_buttons(task_id=task_id)
            card = render_card(message, task_id=task_id, keys=[])
            card["button_list"] = [{"text": b.label, "key": f"spent-{i}"} for i, b in enumerate(old)]
            card["replace_text"] = message.status or message.title
        body = {
            "userids": [user_id],
            "agentid": self.settings.agent_id,
            "response_code": code,
            "template_card": card,
        }
        client = self.api.client
        try:
            await self.api.call(
                lambda: client.post("message/update_template_card", data=body), what="a card update"
            )
        except DeliveryError as exc:
            log.info("wecom card %s not updated (%s); posting a follow-up", task_id, exc.user_message)
            return False
        return True

    def _on_app_plaintext(self, plain: str) -> None:
        event = inbound.parse_app_callback(plain, agent_id=self.settings.agent_id)
        if event is not None:
            self._spawn(self._deliver(event))

    def _on_smart_bot_plaintext(self, plain: str) -> None:
        try:
            payload = json.loads(plain)
        except ValueError:
            log.warning("wecom smart bot sent a body that is not JSON")
            return
        event = inbound.parse_smart_bot_callback(payload) if isinstance(payload, dict) else None
        if event is not None:
            self._spawn(self._deliver(event))

    async def _deliver(self, event: inbound.TextIn | inbound.CardClickIn) -> None:
        sink: InboundSink | None = getattr(self, "sink", None)
        if sink is None:
            log.warning("wecom event dropped: the adapter was not started")
            return
        if event.dedupe_key and not self.state.first_delivery(message_key=event.dedupe_key):
            return
        if event.reply_url:
            self.state.offer_reply_url(conversation_id=event.conversation_id, url=event.reply_url)
        name = await self.contacts.display_name(event.user_id)
        if isinstance(event, inbound.TextIn):
            await sink.on_message(inbound.to_inbound(event, display_name=name))
            return
        button = self.state.card_button(task_id=event.task_id, key=event.key)
        if button is None:
            log.info("wecom click on an unknown or expired card")
            await self.send(inbound.conversation_of(event), EXPIRED_BUTTON)
            return
        origin = self.state.card_origin(task_id=event.task_id)
        if origin is not None:
            # a card sent one-to-one on a group's behalf: the click counts in that group
            event = dataclasses.replace(event, conversation_id=origin, is_direct=False)
        elif event.response_code:
            self.state.offer_response_code(task_id=event.task_id, response_code=event.response_code)
        click = inbound.to_click(event, action_id=button.action_id, value=button.value, display_name=name)
        await sink.on_click(click)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("wecom event handling failed")


@register_adapter(defaults.PLATFORM)
def build(runtime: Runtime) -> WeComAdapter | None:
    """The WeCom adapter when `KOBOT_WECOM__*` settings are present."""
    if runtime.settings.wecom is None:
        return None
    return WeComAdapter(settings=runtime.settings.wecom, redis=runtime.redis)
