"""Terminal chat adapter: lines from stdin are commands, replies and progress are printed with rich.

Buttons are shown as numbered choices; typing the number clicks the button of the latest message
that had buttons. Edits print the message again compactly, so a job's progress reads as a log.
"""

from __future__ import annotations

import asyncio
import getpass
import itertools
import sys
import threading
from typing import TextIO

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from kobot.chat import Capabilities, ChatAdapter, InboundSink
from kobot.conversations import ButtonClick, Conversation, Identity, InboundMessage, MessageRef
from kobot.messages import MessageKind, OutgoingMessage, Tone

PLATFORM = "terminal"
CONVERSATION_ID = "local"
EXIT_WORDS = frozenset({"exit", "quit", "退出"})

_STYLE = {
    Tone.INFO: "cyan",
    Tone.RUNNING: "yellow",
    Tone.SUCCESS: "green",
    Tone.WARNING: "magenta",
    Tone.DANGER: "red",
}


def terminal_identity() -> Identity:
    user = getpass.getuser()
    return Identity(platform=PLATFORM, user_id=user, display_name=user)


def terminal_conversation() -> Conversation:
    return Conversation(platform=PLATFORM, conversation_id=CONVERSATION_ID, is_direct=True)


class TerminalAdapter(ChatAdapter):
    """Reads commands from a text stream and prints to a rich console."""

    platform = PLATFORM
    capabilities = Capabilities(
        edits=True, buttons=False, threads=False, markdown=False, max_message_bytes=1 << 20
    )

    def __init__(self, *, console: Console | None = None, stdin: TextIO | None = None) -> None:
        self.console = console or Console(highlight=False)
        self._stdin = stdin or sys.stdin
        self._ids = itertools.count(1)
        self._last_buttons: tuple[MessageRef, OutgoingMessage] | None = None
        self._closed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.identity = terminal_identity()
        self.conversation = terminal_conversation()

    async def start(self, sink: InboundSink) -> None:
        await super().start(sink)
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._read_lines, name="terminal-stdin", daemon=True).start()
        self.console.print("kobot terminal chat · type `help`, `exit` to leave", style="bold")

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def stop(self) -> None:
        self._closed.set()

    def _read_lines(self) -> None:
        assert self._loop is not None
        for line in self._stdin:
            text = line.strip()
            if not text:
                continue
            if text.lower() in EXIT_WORDS:
                break
            self._loop.call_soon_threadsafe(self._dispatch, text)
        self._loop.call_soon_threadsafe(self._closed.set)

    def _dispatch(self, text: str) -> None:
        if text.isdigit() and self._last_buttons is not None:
            coroutine = self._click(int(text))
        else:
            coroutine = self.sink.on_message(
                InboundMessage(identity=self.identity, conversation=self.conversation, text=text)
            )
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _click(self, number: int) -> None:
        assert self._last_buttons is not None
        ref, message = self._last_buttons
        if not 1 <= number <= len(message.buttons):
            self.console.print(f"choose 1 to {len(message.buttons)}", style="magenta")
            return
        button = message.buttons[number - 1]
        await self.sink.on_click(
            ButtonClick(
                identity=self.identity,
                conversation=self.conversation,
                action_id=button.action_id,
                value=button.value,
                message=ref,
            )
        )

    async def send(self, conversation: Conversation, message: OutgoingMessage) -> MessageRef:
        ref = MessageRef(
            platform=PLATFORM, conversation_id=conversation.conversation_id, message_id=str(next(self._ids))
        )
        self._print(ref, message, edit=False)
        return ref

    async def update(self, ref: MessageRef, message: OutgoingMessage) -> MessageRef:
        self._print(ref, message, edit=True)
        return ref

    def _print(self, ref: MessageRef, message: OutgoingMessage, *, edit: bool) -> None:
        style = _STYLE[message.tone]
        if message.buttons:
            self._last_buttons = (ref, message)
        elif self._last_buttons is not None and self._last_buttons[0] == ref:
            # the message lost its buttons (a job that ended): its numbers choose nothing any more
            self._last_buttons = None
        if edit and message.kind is MessageKind.PROGRESS and message.tone is Tone.RUNNING:
            self.console.print(Text(f"↻ #{ref.message_id} " + _one_line(message), style=style))
            return
        self.console.print(Panel(Text(message.to_text()), border_style=style, title=f"#{ref.message_id}"))


def _one_line(message: OutgoingMessage) -> str:
    return " · ".join(line for line in message.to_text().splitlines() if line)
