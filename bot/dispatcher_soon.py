"""The dispatcher of a running kobot, built on a thread a moment after the start.

Importing the dispatcher (the parser and its grammar, the approval, retry and cancel flows, the command
runs) and autoheal, which shares its approval flow, was about 50 ms of `kobot serve`'s way to ready.
`DispatcherSoon` stands in for both from the start: it is the `InboundSink` every adapter is given, and
what the REST command route and the supervisor's housekeeping ask for the dispatcher. A use that comes
before the build waits for it on a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import TYPE_CHECKING

from bot.runtime import Runtime

if TYPE_CHECKING:
    from bot.autoheal import Autoheal, AutohealOutcome
    from bot.dispatcher import Dispatcher
    from kobot.conversations import ButtonClick, InboundMessage

log = logging.getLogger(__name__)


class DispatcherSoon:
    """The dispatcher and its autoheal, built once: by `start`'s task `start_delay` after it, or by the
    first use that comes sooner (on a thread)."""

    def __init__(self, *, runtime: Runtime, start_delay: float) -> None:
        self._runtime = runtime
        self._start_delay = start_delay
        self._building = threading.Lock()
        self._built: tuple[Dispatcher, Autoheal] | None = None
        self._soon: asyncio.Task[None] | None = None

    @property
    def is_built(self) -> bool:
        return self._built is not None

    def built(self) -> tuple[Dispatcher, Autoheal]:
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
        built = self._built if self._built is not None else await asyncio.to_thread(self.built)
        return built[0]

    async def autoheal(self) -> Autoheal:
        built = self._built if self._built is not None else await asyncio.to_thread(self.built)
        return built[1]

    # InboundSink ---------------------------------------------------------------------------------
    async def on_message(self, message: InboundMessage) -> None:
        await (await self.dispatcher()).on_message(message)

    async def on_click(self, click: ButtonClick) -> None:
        await (await self.dispatcher()).on_click(click)

    # lifetime ------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._soon is None:
            self._soon = asyncio.create_task(self._build_soon(), name="kobot-dispatcher-build")

    async def stop(self) -> None:
        soon, self._soon = self._soon, None
        if soon is not None:
            soon.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await soon

    async def _build_soon(self) -> None:
        await asyncio.sleep(self._start_delay)
        try:
            await asyncio.to_thread(self.built)
        except Exception:
            # said now, not at the first command; a use retries the build and fails with what went wrong
            log.exception("building the dispatcher failed")


class AutohealSoon:
    """Autoheal's rounds for the node watcher, on the autoheal `DispatcherSoon` builds."""

    def __init__(self, dispatching: DispatcherSoon) -> None:
        self._dispatching = dispatching

    async def consider(self, cluster: str, ready: dict[str, bool]) -> AutohealOutcome:
        return await (await self._dispatching.autoheal()).consider(cluster, ready)
