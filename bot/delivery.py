"""Replies and approval cards on their way to chat: through the conversation's adapter, with retries.

A platform that refuses for a while (rate limit, 5xx) delays a message, it does not lose it: each send
is tried `CHAT_DELIVERY_ATTEMPTS` times with the capped backoff, or after the platform's Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from kobot import defaults
from kobot.backoff import capped_backoff
from kobot.chat import ChatAdapter
from kobot.conversations import Conversation, MessageRef
from kobot.errors import DeliveryError
from kobot.messages import OutgoingMessage

log = logging.getLogger(__name__)


async def deliver(send: Callable[[], Awaitable[MessageRef]]) -> MessageRef:
    """Call `send` until the platform takes the message; the last `DeliveryError` when it never does."""
    for attempt in range(1, defaults.CHAT_DELIVERY_ATTEMPTS + 1):
        try:
            return await send()
        except DeliveryError as exc:
            if attempt == defaults.CHAT_DELIVERY_ATTEMPTS:
                raise
            wait = exc.retry_after or capped_backoff(
                attempt=attempt,
                first=defaults.CHAT_DELIVERY_BACKOFF_SECONDS,
                cap=defaults.CHAT_DELIVERY_BACKOFF_CAP_SECONDS,
            )
            log.warning(
                "chat delivery failed (%s); attempt %d, retrying in %.1fs", exc.user_message, attempt, wait
            )
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")


class ChatOut:
    """Sends to the adapter of each conversation's platform. `adapters` is the running kobot's own
    mapping, read at each send, so adapters added after construction are found."""

    def __init__(self, *, adapters: Mapping[str, ChatAdapter]) -> None:
        self._adapters = adapters

    async def reply(self, conversation: Conversation, message: OutgoingMessage) -> None:
        """Answer in the conversation; dropped (and logged) when its platform has no adapter."""
        adapter = self._adapters.get(conversation.platform)
        if adapter is None:
            log.warning("no adapter for %s; reply dropped", conversation.platform)
            return
        await deliver(lambda: adapter.send(conversation, message))

    async def ask(self, conversation: Conversation, card: OutgoingMessage) -> MessageRef:
        """Post a card with buttons where the request was made; where the card is, for later edits."""
        adapter = self._adapters[conversation.platform]
        return await deliver(lambda: adapter.ask(conversation, card))

    async def edit_card(
        self, ref: MessageRef | None, card: OutgoingMessage | None, fallback: Conversation
    ) -> None:
        """Show `card` in place of the one at `ref`, or post it to `fallback` when it was never posted.

        The card is edited by its own platform's adapter: a click in another platform's approval
        channel (or a REST request's card) must not hand one platform's message to another."""
        if card is None:
            return
        adapter = self._adapters.get(fallback.platform if ref is None else ref.platform)
        if adapter is None:
            return
        if ref is None:
            await deliver(lambda: adapter.send(fallback, card))
        else:
            await deliver(lambda: adapter.update(ref, card))
