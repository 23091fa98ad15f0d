"""The chat adapter contract every platform implements (terminal, Slack, DingTalk, WeCom).

An adapter:
- verifies and translates inbound platform traffic into `InboundMessage` / `ButtonClick` and hands them
  to the `InboundSink` (the dispatcher) after acknowledging the platform within its deadline;
- renders `OutgoingMessage` for its platform in `send`, `update` and `ask`;
- raises `DeliveryError` (with `retry_after` when the platform said so) when a message was not taken,
  so the caller can retry; it never swallows a failed delivery.

Capability flags tell callers what the platform can do; the base class supplies the text fallbacks.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from kobot.conversations import ButtonClick, Conversation, InboundMessage, MessageRef
from kobot.messages import OutgoingMessage

if TYPE_CHECKING:
    from fastapi import APIRouter


@dataclass(frozen=True)
class Capabilities:
    """What a platform supports. `max_message_bytes` is the size a rendered message must fit in."""

    edits: bool
    buttons: bool
    threads: bool
    markdown: bool
    max_message_bytes: int
    edits_per_message: int | None = None
    """None for unlimited edits; WeCom cards can be updated once per response code."""


class InboundSink(Protocol):
    """Where adapters deliver inbound events: the dispatcher."""

    async def on_message(self, message: InboundMessage) -> None: ...

    async def on_click(self, click: ButtonClick) -> None: ...


class ChatAdapter(abc.ABC):
    """One chat platform. Subclasses set `platform` and `capabilities` and implement send/update."""

    platform: str
    capabilities: Capabilities
    call_budget_seconds: float | None = None
    """The longest one send or update may take when the adapter waits inside it (Slack waits out 429s);
    a caller that bounds a call allows more, or it would cancel a request the platform already took.
    None: the adapter's calls end within their HTTP timeout."""

    async def start(self, sink: InboundSink) -> None:
        """Begin receiving (open a socket, register routes...). Returns once receiving has started."""
        self.sink = sink

    async def stop(self) -> None:  # noqa: B027  (optional hook: most adapters hold nothing to release)
        """Stop receiving and release connections. Safe to call twice."""

    def router(self) -> APIRouter | None:
        """HTTP routes the platform calls back on (mounted by `create_app`), or None for socket-only."""
        return None

    @abc.abstractmethod
    async def send(self, conversation: Conversation, message: OutgoingMessage) -> MessageRef:
        """Post a new message (threaded when the conversation has a thread) and return its ref."""

    @abc.abstractmethod
    async def update(self, ref: MessageRef, message: OutgoingMessage) -> MessageRef:
        """Show `message` in place of the one at `ref`.

        Platforms without edits (or out of edits for that message) post a follow-up instead and
        return the ref of what they posted; callers always keep the returned ref.
        """

    async def ask(self, conversation: Conversation, message: OutgoingMessage) -> MessageRef:
        """Send a message with buttons; platforms without buttons show them as numbered choices."""
        if self.capabilities.buttons or not message.buttons:
            return await self.send(conversation, message)
        text_only = message.model_copy(update={"body": _join(message.body, message.to_text())})
        return await self.send(conversation, text_only)


@runtime_checkable
class TaggedPosting(Protocol):
    """An adapter that tags a post with a key and finds the post again by that key.

    A sender that may have posted without learning or keeping the ref (a crash, a store failure, an
    answer lost to a timeout) looks for its tag before posting again, so the retry edits that message
    instead of leaving a second copy. Slack carries the tag in message metadata, DingTalk in the card's
    id. `find_tagged` raises DeliveryError when it cannot look (the caller retries later rather than post
    blind) and returns None when the conversation holds no message with the tag posted since `since`,
    or when the platform cannot look but drops a repeated `send_tagged` itself (WeCom's duplicate
    check). Conversations a platform cannot tag (DingTalk custom robots, WeCom group chats and robots)
    get plain posts: at least once."""

    async def send_tagged(
        self, conversation: Conversation, message: OutgoingMessage, *, tag: str
    ) -> MessageRef:
        """Like `ChatAdapter.send`, with `tag` attached where `find_tagged` can see it."""
        ...

    async def find_tagged(
        self, conversation: Conversation, *, tag: str, since: datetime
    ) -> MessageRef | None:
        """The message tagged `tag` posted to `conversation` since `since`, if any."""
        ...


def _join(first: str | None, second: str) -> str:
    return second if not first else f"{first}\n{second}"
