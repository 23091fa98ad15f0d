"""The `api` chat platform: where the dispatcher's replies to REST callers go, kept for their HTTP answers.

REST callers share one conversation (`api:rest`) but not their replies: each request collects what is
said while it is handled, in a context variable of its own.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from bot.policy import defaults as policy_defaults
from kobot.chat import Capabilities, ChatAdapter
from kobot.conversations import Conversation, MessageRef
from kobot.messages import OutgoingMessage

log = logging.getLogger(__name__)

REST_CONVERSATION = Conversation(
    platform=policy_defaults.API_PLATFORM, conversation_id="rest", is_direct=True
)
"""Where REST commands are 'said': the same key as the read-only routes' (`api:rest`, so bindings limited
to `channels: ["api:*"]` apply alike), and direct, because no approver shares it: approval requests go
to the cluster's approval channels."""

REST_REPLY_MAX_BYTES = 1024 * 1024
"""What one reply may hold: an HTTP answer has no platform limit, but a reply is still one message."""

REST_REPLIES_MAX = 20
"""Replies one command may add to its HTTP answer; a command says two or three things at most."""

_collecting: contextvars.ContextVar[list[OutgoingMessage] | None] = contextvars.ContextVar(
    "kobot_rest_replies", default=None
)


class RestReplies(ChatAdapter):
    """The `api` platform: what the dispatcher says to a REST caller is kept for that request's answer.

    The dispatcher handles a REST command inside the request's task, so the replies it sends are
    collected in a context variable of that request. Anything sent to `api:rest` outside a request (an
    approval voided after a click, an alert for a subscription that cannot exist) has nowhere to go and
    is dropped. Nothing posts progress for REST jobs: callers follow them at `GET /api/v1/jobs/{id}`."""

    platform = policy_defaults.API_PLATFORM
    capabilities = Capabilities(
        edits=True, buttons=False, threads=False, markdown=True, max_message_bytes=REST_REPLY_MAX_BYTES
    )

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    @contextmanager
    def collecting(self) -> Iterator[list[OutgoingMessage]]:
        """Collect what is sent to REST callers in this context (one request) into the yielded list."""
        replies: list[OutgoingMessage] = []
        token = _collecting.set(replies)
        try:
            yield replies
        finally:
            _collecting.reset(token)

    async def send(self, conversation: Conversation, message: OutgoingMessage) -> MessageRef:
        return self._keep(conversation.conversation_id, message)

    async def update(self, ref: MessageRef, message: OutgoingMessage) -> MessageRef:
        return self._keep(ref.conversation_id, message)

    async def ask(self, conversation: Conversation, message: OutgoingMessage) -> MessageRef:
        """Buttons are for the approvers in the approval channels: their signed values never leave in a
        REST answer, and a REST caller has nothing to click."""
        return self._keep(conversation.conversation_id, message.model_copy(update={"buttons": ()}))

    def _keep(self, conversation_id: str, message: OutgoingMessage) -> MessageRef:
        replies = _collecting.get()
        if replies is None:
            log.debug("a reply to REST callers outside a request was dropped: %s", message.title)
        elif len(replies) < REST_REPLIES_MAX:
            replies.append(message)
        return MessageRef(
            platform=self.platform, conversation_id=conversation_id, message_id=str(next(self._ids))
        )
