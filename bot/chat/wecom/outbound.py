"""Posting to each kind of WeCom conversation: app session, app group chat, group robot, smart-bot reply.

Only one-to-one app sessions and smart-bot replies can carry clickable cards. A message with buttons for
an app group chat is posted there (buttons as numbered choices) and sent as a card to the group's members
one-to-one; a click on such a card counts as a click in the group. Group robots show numbered choices.

WeCom drops, without an error, messages beyond a per-recipient budget (30 a minute and 1,000 an hour per
person; 200 a minute per group member): every app message waits for its recipient's budget, counted in
Redis so several kobot processes share it. `invaliduser` in an answer means not delivered.

Tagged sends (`tag`, the alert outbox's group key) to one-to-one app sessions use WeCom's duplicate check
(message/send, document/path/90236: with `enable_duplicate_check` 1, "在一定时间间隔内，同样内容（请求json）
的消息，不会重复收到"; the interval is at most 4 hours): the card's task id and button keys and the
markdown's tag line are derived from the tag and the content, so a post retried after its answer was lost
is the same request and the person does not get it twice. A card retried after the interval is refused
for its used task id (errcode 42014): WeCom took it then, and it goes out again under the next task id.
WeCom offers no way to look a sent message up,
and appchat/send, group robots and smart-bot replies have no duplicate check: there a retried post may be
shown twice (at least once).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import aiohttp

from bot.chat.wecom import defaults, inbound
from bot.chat.wecom.client import WeComApi, WeComRefused
from bot.chat.wecom.render import needs_cards, render_card, render_markdown, split_markdown, stage_of
from bot.chat.wecom.state import WeComState, button_keys, digest
from kobot.conversations import MessageRef
from kobot.errors import DeliveryError
from kobot.messages import OutgoingMessage
from kobot.settings_wecom import WeComSettings

log = logging.getLogger(__name__)


MINUTE = 60.0 + defaults.PACING_MARGIN_SECONDS
HOUR = 3600.0 + defaults.PACING_MARGIN_SECONDS
USER_BUDGET = ((MINUTE, defaults.USER_MESSAGES_PER_MINUTE), (HOUR, defaults.USER_MESSAGES_PER_HOUR))
GROUP_BUDGET = ((MINUTE, defaults.GROUP_MESSAGES_PER_MINUTE),)
ROBOT_BUDGET = ((MINUTE, defaults.ROBOT_MESSAGES_PER_MINUTE),)

CARD_NOTE = '<font color="comment">The buttons are in the card kobot sent each member one-to-one.</font>'
"""Under a message with buttons in an app group chat, which cannot carry cards."""


class Outbound:
    def __init__(
        self,
        *,
        settings: WeComSettings,
        api: WeComApi,
        state: WeComState,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.api = api
        self.state = state
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        conversation_id: str,
        message: OutgoingMessage,
        *,
        hops: int = 0,
        origin: str | None = None,
        tag: str | None = None,
    ) -> MessageRef:
        """Post `message`; `origin` is the conversation a routed message stands for (clicks count there).
        With `tag`, an app session gets it under WeCom's duplicate check (see the module docstring)."""
        kind, _, target = conversation_id.partition(":")
        if not target:
            raise DeliveryError(f"not a WeCom conversation id: {conversation_id!r}")
        if kind == inbound.USER:
            return await self._to_user(conversation_id, target, message, tag=tag)
        if kind == inbound.APPCHAT:
            return await self._to_appchat(conversation_id, target, message, origin=origin or conversation_id)
        if kind == inbound.ROBOT:
            return await self._to_robot(conversation_id, target, message)
        if kind == inbound.SMARTBOT:
            return await self._to_smart_bot(conversation_id, target, message, hops=hops)
        raise DeliveryError(f"not a WeCom conversation id: {conversation_id!r}")

    def _ref(
        self, conversation_id: str, message_id: str, message: OutgoingMessage, **extra: str
    ) -> MessageRef:
        return MessageRef(
            platform=defaults.PLATFORM,
            conversation_id=conversation_id,
            message_id=message_id,
            extra={"stage": stage_of(message), **extra},
        )

    async def _pace(self, recipient: str, budget: tuple[tuple[float, int], ...]) -> None:
        """Wait until `recipient` may get one more message without WeCom dropping it, and count it."""
        waited = 0.0
        while True:
            wait = self.state.reserve_send(recipient=recipient, limits=budget, now=self.clock())
            if wait <= 0:
                return
            if waited + wait > defaults.PACING_WAIT_MAX_SECONDS:
                raise DeliveryError(
                    f"WeCom would drop more messages to {recipient} now; retrying later", retry_after=wait
                )
            log.info("wecom pacing: %s waits %.1fs for its message budget", recipient, wait)
            await self.api.sleep(wait)
            waited += wait

    async def _send_card(
        self,
        user_ids: list[str],
        message: OutgoingMessage,
        *,
        origin: str | None = None,
        tag: str | None = None,
    ) -> str:
        """One button card to each of `user_ids` (one call); its task id. With `origin`, clicks count
        there; with `tag`, the same card sent again is the same request, under the duplicate check."""
        for user_id in user_ids:
            await self._pace(f"{inbound.USER}:{user_id}", USER_BUDGET)
        if tag is None:
            task_id = self.state.new_task_id()
            keys = self.state.remember_card(task_id=task_id, buttons=message.buttons)
            if origin is not None:
                self.state.remember_origin(task_id=task_id, conversation_id=origin)
            answer = await self._post_card(user_ids, message, task_id=task_id, keys=keys, checked=False)
        else:
            stable = digest(json.dumps([user_ids, tag]))
            content = render_card(message, task_id="", keys=button_keys(message.buttons, stable=stable))
            # A task id may not be used twice by an app: it names this content, so a changed message
            # is a new card and the same one a duplicate.
            base = f"kobot_t_{digest(json.dumps([stable, content], sort_keys=True))[:40]}"
            generation = 0
            while True:
                # A retry past the duplicate check's interval is refused for its used task id, though
                # the card it names was shown long ago: the card goes out again under the next id (the
                # person may see it twice, rather than never see what changed), and that id stays the
                # same request for a retry of its own.
                task_id = base if generation == 0 else f"{base}_{generation}"
                keys = self.state.remember_card(task_id=task_id, buttons=message.buttons, stable=stable)
                try:
                    answer = await self._post_card(
                        user_ids, message, task_id=task_id, keys=keys, checked=True
                    )
                    break
                except WeComRefused as exc:
                    generation += 1
                    if exc.errcode != defaults.TASK_ID_USED_ERRCODE:
                        raise
                    if generation >= defaults.TASK_ID_GENERATIONS_MAX:
                        raise
                    log.info("wecom card task id %s is used; sending under the next one", task_id)
        if answer.get("response_code") and origin is None:
            self.state.offer_response_code(task_id=task_id, response_code=str(answer["response_code"]))
        return task_id

    async def _post_card(
        self, user_ids: list[str], message: OutgoingMessage, *, task_id: str, keys: list[str], checked: bool
    ) -> dict[str, Any]:
        """One message/send of the card; `checked` puts it under WeCom's duplicate check."""
        client, agent_id = self.api.client, self.settings.agent_id
        msg: dict[str, Any] = {
            "msgtype": "template_card",
            "template_card": render_card(message, task_id=task_id, keys=keys),
        }
        if checked:
            msg |= _DUPLICATE_CHECK
        touser = "|".join(user_ids)
        answer = await self.api.call(lambda: client.message.send(agent_id, touser, msg=msg), what="a card")
        _check_recipients(answer, user_ids, what="a card")
        return answer

    async def _to_user(
        self, conversation_id: str, user_id: str, message: OutgoingMessage, *, tag: str | None = None
    ) -> MessageRef:
        client, agent_id = self.api.client, self.settings.agent_id
        if message.buttons:
            task_id = await self._send_card([user_id], message, tag=tag)
            return self._ref(conversation_id, task_id, message, card="1")
        first = ""
        text = render_markdown(message)
        if tag is not None:
            text += f'\n<font color="comment">ref {digest(tag)[: defaults.TAG_REF_CHARS]}</font>'
        for part in split_markdown(text):
            msg: dict[str, Any] = {"msgtype": "markdown", "markdown": {"content": part}}
            if tag is not None:
                msg |= _DUPLICATE_CHECK
            await self._pace(conversation_id, USER_BUDGET)
            answer = await self.api.call(
                partial(client.message.send, agent_id, user_id, msg=msg), what="a message"
            )
            _check_recipients(answer, [user_id], what="a message")
            first = first or str(answer.get("msgid") or "")
        return self._ref(conversation_id, first or _local_id(), message)

    async def _to_appchat(
        self, conversation_id: str, chat_id: str, message: OutgoingMessage, *, origin: str
    ) -> MessageRef:
        client = self.api.client
        text = render_markdown(message)
        cards = needs_cards(message)
        if cards:
            text += "\n" + CARD_NOTE
        for part in split_markdown(text):
            await self._pace(conversation_id, GROUP_BUDGET)
            await self.api.call(
                partial(client.appchat.send, chat_id, "markdown", content=part),
                what="a group chat message",
            )
        if cards:
            info = await self.api.call(lambda: client.appchat.get(chat_id), what="the group chat's members")
            members = [str(m) for m in (info.get("userlist") or [])][: defaults.APPCHAT_CARD_MEMBERS_MAX]
            if members:
                task_id = await self._send_card(members, message, origin=origin)
                return self._ref(conversation_id, task_id, message)
        return self._ref(conversation_id, _local_id(), message)

    async def _to_robot(self, conversation_id: str, name: str, message: OutgoingMessage) -> MessageRef:
        key = self.settings.robot_webhooks.get(name)
        if key is None and name == "default":
            key = self.settings.robot_webhook_key
        if key is None:
            raise DeliveryError(f"no WeCom group robot named {name!r}: add it to KOBOT_WECOM__ROBOT_WEBHOOKS")
        url = self.settings.api_base_url + "webhook/send"
        for part in split_markdown(
            render_markdown(message),
            limit=defaults.ROBOT_MARKDOWN_MAX_BYTES,
            max_parts=defaults.ROBOT_MESSAGE_PARTS_MAX,
        ):
            body = {"msgtype": "markdown", "markdown": {"content": part}}
            await self._pace(conversation_id, ROBOT_BUDGET)
            await self._post_json(
                url, body, params={"key": key.get_secret_value()}, what=f"group robot {name!r}"
            )
        return self._ref(conversation_id, _local_id(), message)

    async def _to_smart_bot(
        self, conversation_id: str, chat: str, message: OutgoingMessage, *, hops: int
    ) -> MessageRef:
        url = self.state.take_reply_url(conversation_id=conversation_id)
        if url is not None:
            try:
                return await self._reply(url, conversation_id, message)
            except DeliveryError as exc:
                if exc.retry_after is not None:
                    raise
                # the link was refused (WeCom already counts it used or expired): use the route
                log.info("wecom smart bot reply link refused (%s)", exc.user_message)
        route = self.settings.smart_bot_routes.get(chat)
        if route is not None and hops == 0 and not route.startswith(f"{inbound.SMARTBOT}:"):
            sent = await self.send(route, message, hops=hops + 1, origin=conversation_id)
            return sent.model_copy(update={"conversation_id": conversation_id})
        raise DeliveryError(
            f"WeCom group {chat} cannot be posted to now (its reply link is used up); "
            "route it in KOBOT_WECOM__SMART_BOT_ROUTES"
        )

    async def _reply(self, url: str, conversation_id: str, message: OutgoingMessage) -> MessageRef:
        """One post through a smart-bot reply link: a card when there are buttons, else the first part."""
        if message.buttons:
            task_id = self.state.new_task_id()
            keys = self.state.remember_card(task_id=task_id, buttons=message.buttons)
            card = render_card(message, task_id=task_id, keys=keys)
            await self._post_json(url, {"msgtype": "template_card", "template_card": card}, what="a reply")
            return self._ref(conversation_id, task_id, message)
        parts = split_markdown(render_markdown(message), limit=defaults.ROBOT_MARKDOWN_MAX_BYTES)
        await self._post_json(url, {"msgtype": "markdown", "markdown": {"content": parts[0]}}, what="a reply")
        if len(parts) > 1:
            log.info("wecom smart bot reply cut to its first part (one reply per mention)")
        return self._ref(conversation_id, _local_id(), message)

    async def _post_json(
        self, url: str, body: dict[str, Any], *, what: str, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """POST a webhook-style body; the URL carries the credential, so it is never logged."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=defaults.API_TIMEOUT_SECONDS)
            )
        try:
            async with self._session.post(url, json=body, params=params) as response:
                if response.status >= 500 or response.status == 429:
                    retry = response.headers.get("Retry-After")
                    raise DeliveryError(
                        f"WeCom did not take {what} (HTTP {response.status})",
                        retry_after=float(retry) if retry and retry.isdigit() else None,
                    )
                if response.status != 200:
                    raise DeliveryError(f"WeCom refused {what} (HTTP {response.status})")
                answer: Any = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise DeliveryError(f"WeCom did not take {what} ({type(exc).__name__})") from None
        code = int(answer.get("errcode", 0)) if isinstance(answer, dict) else -1
        if code == defaults.ROBOT_BAD_KEY_ERRCODE:
            raise DeliveryError(
                f"WeCom refused {what}: the webhook key is wrong or the robot left the group (errcode 93000)"
            )
        if code in defaults.RATE_LIMIT_ERRCODES:
            raise DeliveryError(f"WeCom limited {what}", retry_after=defaults.RATE_LIMIT_RETRY_SECONDS)
        if code != 0:
            raise DeliveryError(f"WeCom refused {what} (errcode {code})")
        return dict(answer)


def _check_recipients(answer: dict[str, Any], user_ids: list[str], *, what: str) -> None:
    """WeCom answers errcode 0 with `invaliduser` naming who did not get the message (outside the app's
    visible range, or unknown); for one recipient, that is not delivered."""
    invalid = {u.lower() for u in str(answer.get("invaliduser") or "").split("|") if u}
    missed = [u for u in user_ids if u.lower() in invalid]
    if missed and len(missed) == len(user_ids):
        raise DeliveryError(
            f"WeCom did not deliver {what} to {', '.join(missed)}: "
            "not in the app's visible range (invaliduser)"
        )
    if missed:
        log.warning(
            "wecom did not deliver %s to %d of %d members (invaliduser)", what, len(missed), len(user_ids)
        )


_DUPLICATE_CHECK = {"enable_duplicate_check": 1, "duplicate_check_interval": defaults.DUPLICATE_CHECK_SECONDS}
"""message/send fields that make WeCom drop a repeat of the same request within the interval."""


def _local_id() -> str:
    """WeCom returns no id for group posts; kobot names them itself so refs stay distinct."""
    return f"local_{secrets.token_hex(8)}"
