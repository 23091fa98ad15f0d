"""The dispatcher of a running kobot, built on a thread a moment after the start.

Importing the dispatcher (the parser and its grammar, the approval, retry and cancel flows, the command
runs) and autoheal, which shares its approval flow, held `kobot serve`'s way to ready (about 50 ms).
`DispatcherSoon` stands in for both from the start: it is the `InboundSink` every adapter is given, and
what the REST command route and the supervisor's housekeeping ask for the dispatcher. Uses that come
before the build wait for that one build, in the order they came, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import TYPE_CHECKING

from bot.delivery import ChatOut
from bot.replies import failed_with_ref
from bot.runtime import Runtime

if TYPE_CHECKING:
    from bot.autoheal import Autoheal, AutohealOutcome
    from bot.dispatcher import Dispatcher
    from kobot.conversations import ButtonClick, Conversation, Identity, InboundMessage

log = logging.getLogger(__name__)

Built = tuple["Dispatcher", "Autoheal"]


class DispatcherSoon:
    """The dispatcher and its autoheal, built once: `start_delay` after `start`, or by the first use that
    comes sooner. A build that failed is tried again by the next use; the event that met the failure is
    answered like any unexpected error, with a reference to the log."""

    def __init__(self, *, runtime: Runtime, start_delay: float) -> None:
        self._runtime = runtime
        self._start_delay = start_delay
        self._building = threading.Lock()
        self._built: Built | None = None
        self._build: asyncio.Task[Built] | None = None
        self._soon: asyncio.Task[None] | None = None

    @property
    def is_built(self) -> bool:
        return self._built is not None

    def built(self) -> Built:
        """The dispatcher and autoheal, building them now when no one has yet (blocking: call it on a
        thread)."""
        with self._building:
            if self._built is None:
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
        """Every use awaits the one build task: its waiters resume in the order they came (one thread
        each would have come back in any order, and held the executor's threads meanwhile)."""
        if self._build is None or _failed(self._build):
            self._build = asyncio.create_task(asyncio.to_thread(self.built), name="kobot-dispatcher-build")
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
            ref = uuid.uuid4().hex[:12]
            log.exception("building the dispatcher failed [ref %s] for an event from %s", ref, who.key)
            await ChatOut(adapters=self._runtime.adapters).reply(conversation, failed_with_ref(ref))
            return None

    # lifetime ------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._soon is None:
            self._soon = asyncio.create_task(self._build_soon(), name="kobot-dispatcher-build-soon")

    async def stop(self) -> None:
        """Cancel a build still waiting for its delay (one already on its thread ends on its own: it
        only builds objects)."""
        soon, self._soon = self._soon, None
        if soon is not None and not soon.done():
            soon.cancel()
            await asyncio.gather(soon, return_exceptions=True)

    async def _build_soon(self) -> None:
        await asyncio.sleep(self._start_delay)
        try:
            await self._ready()
        except Exception:
            # said now, not only at the first command (which is answered with a reference, and retries)
            log.exception("building the dispatcher failed")


def _failed(task: asyncio.Task[Built]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)


class AutohealSoon:
    """Autoheal's rounds for the node watcher, on the autoheal `DispatcherSoon` builds."""

    def __init__(self, dispatching: DispatcherSoon) -> None:
        self._dispatching = dispatching

    async def consider(self, cluster: str, ready: dict[str, bool]) -> AutohealOutcome:
        return await (await self._dispatching.autoheal()).consider(cluster, ready)
