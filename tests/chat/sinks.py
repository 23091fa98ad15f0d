"""What platform adapter tests hand inbound events to instead of the dispatcher."""

from __future__ import annotations

import asyncio

from kobot.conversations import ButtonClick, InboundMessage


class RecordingSink:
    """Stands where the dispatcher stands: keeps what the adapter hands on, and on which event loop."""

    def __init__(self) -> None:
        self.messages: list[InboundMessage] = []
        self.clicks: list[ButtonClick] = []
        self.loops: set[int] = set()

    async def on_message(self, message: InboundMessage) -> None:
        self.loops.add(id(asyncio.get_running_loop()))
        self.messages.append(message)

    async def on_click(self, click: ButtonClick) -> None:
        self.loops.add(id(asyncio.get_running_loop()))
        self.clicks.append(click)
