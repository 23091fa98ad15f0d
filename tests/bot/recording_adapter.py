"""A chat adapter that records what kobot sent, for testing kobot's own side of the adapter contract.

It stands for no platform (platform tests use the real SDKs against peers); it lets notifier and
dispatcher tests see every send and edit, and refuse deliveries on demand.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from kobot.chat import Capabilities, ChatAdapter
from kobot.conversations import Conversation, MessageRef
from kobot.errors import DeliveryError
from kobot.messages import OutgoingMessage


@dataclass
class Delivery:
    kind: str  # "send" or "update"
    ref: MessageRef
    message: OutgoingMessage
    at: float = field(default_factory=time.monotonic)


class RecordingAdapter(ChatAdapter):
    capabilities = Capabilities(
        edits=True, buttons=True, threads=True, markdown=True, max_message_bytes=40_000
    )

    def __init__(self, platform: str = "terminal") -> None:
        self.platform = platform
        self.deliveries: list[Delivery] = []
        self.refuse_next = 0
        self.retry_after: float | None = None
        self.refused = 0
        self._ids = itertools.count(1)

    def _maybe_refuse(self) -> None:
        if self.refuse_next > 0:
            self.refuse_next -= 1
            self.refused += 1
            raise DeliveryError("platform refused (test)", retry_after=self.retry_after)

    async def send(self, conversation: Conversation, message: OutgoingMessage) -> MessageRef:
        self._maybe_refuse()
        ref = MessageRef(
            platform=self.platform,
            conversation_id=conversation.conversation_id,
            message_id=str(next(self._ids)),
        )
        self.deliveries.append(Delivery("send", ref, message))
        return ref

    async def update(self, ref: MessageRef, message: OutgoingMessage) -> MessageRef:
        self._maybe_refuse()
        self.deliveries.append(Delivery("update", ref, message))
        return ref
