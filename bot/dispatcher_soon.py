"""The dispatcher of a running kobot, built on a thread a moment after the start.

Importing the dispatcher (the parser and its grammar, the approval, retry and cancel flows, the command
runs) and autoheal, which shares its approval flow, held `kobot serve`'s way to ready (about 50 ms).
`DispatcherSoon` stands in for both from the start: it is the `InboundSink` every adapter is given, and
what the REST command route and the supervisor's housekeeping ask for the dispatcher.

The build attaches every command's handler first (`load_handlers`, which loads the command catalog), so
an event that waited for it parses and runs without waiting again on threads of its own: events that come
before the build resume in the order they came, never on the event loop. `kobot serve` starts the build a
moment after it answers (`bot.app`); otherwise the first use does.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import TYPE_CHECKING

from bot.runtime import Runtime, load_handlers

if TYPE_CHECKING:
    from bot.autoheal import Autoheal, AutohealOutcome
    from bot.dispatcher import Dispatcher
    from kobot.conversations import ButtonClick, Conversation, Identity, InboundMessage

log = logging.getLogger(__name__)

Built = tuple["Dispatcher", "Autoheal"]


class DispatcherSoon:
    """The dispatcher and its autoheal, built once, by the first use. A build that failed is logged and
    tried again by the next use; the event that met the failure is answered like any unexpected error,
    with a reference to the log."""

    def __init__(self, *, runtime: Runtime) -> None:
        self._runtime = runtime
        self._building = threading.Lock()
        self._built: Built | None = None
        self._build: asyncio.Task[Built] | None = None

    @property
    def is_built(self) -> bool:
        return self._built is not None

    def built(self) -> Built:
        """The dispatcher and autoheal, with every handler attached, building them now when no one has
        yet (blocking: call it on a thread)."""
        with self._building:
            if self._built is None:
                load_handlers()
                from bot.autoheal import Autoheal
                from bot.dispatcher import Dispatcher

                dispatcher = Dispatcher(runtime=self._runtime)
                autoheal = Autoheal(
                    runtime=self._runtime, approvals=dispatcher.approvals, runs=dispatcher.runs
                )
                self._built = (dispatcher, autoheal)
            return self._built

    async def dispatcher(self) -> Dispatcher:
        return (await self._ready())[0]

    async def autoheal(self) -> Autoheal:
        return (await self._ready())[1]

    async def _ready(self) -> Built:
        """Every use awaits the one build task, and its waiters resume in the order they came (a thread
        each would have come back in any order, and held the executor's threads meanwhile)."""
        if self._build is None or _failed(self._build):
            self._build = asyncio.create_task(asyncio.to_thread(self.built), name="kobot-dispatcher-build")
            self._build.add_done_callback(_log_failure)
        # shielded: a waiter that is cancelled (its request gone) leaves the build to the others
        return await asyncio.shield(self._build)

    # InboundSink ---------------------------------------------------------------------------------
    async def on_message(self, message: InboundMessage) -> None:
        dispatcher = await self._answering_a_failed_build(message.conversation, message.identity)
        if dispatcher is not None:
            await dispatcher.on_message(message)

    async def on_click(self, click: ButtonClick) -> None:
        dispatcher = await self._answering_a_failed_build(click.conversation, click.identity)
        if dispatcher is not None:
            await dispatcher.on_click(click)

    async def _answering_a_failed_build(self, conversation: Conversation, who: Identity) -> Dispatcher | None:
        """The dispatcher, or None once the person was told that the build failed (a reference to the
        log, as the dispatcher answers any unexpected error)."""
        try:
            return await self.dispatcher()
        except Exception:
            from bot.delivery import ChatOut
            from bot.replies import failed_with_ref

            ref = uuid.uuid4().hex[:12]
            log.error(
                "building the dispatcher failed [ref %s]; an event from %s is not handled", ref, who.key
            )
            await ChatOut(adapters=self._runtime.adapters).reply(conversation, failed_with_ref(ref))
            return None


def _failed(task: asyncio.Task[Built]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)


def _log_failure(task: asyncio.Task[Built]) -> None:
    """Every failed build is said once, with its traceback, whoever waited for it (or no one did)."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("building the dispatcher failed", exc_info=error)


class AutohealSoon:
    """Autoheal's rounds for the node watcher, on the autoheal `DispatcherSoon` builds."""

    def __init__(self, dispatching: DispatcherSoon) -> None:
        self._dispatching = dispatching

    async def consider(self, cluster: str, ready: dict[str, bool]) -> AutohealOutcome:
        return await (await self._dispatching.autoheal()).consider(cluster, ready)
