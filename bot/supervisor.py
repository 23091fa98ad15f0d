"""Starting and stopping everything that runs in a kobot process around the runtime.

`kobot chat` and `kobot serve` both use this: adapters receive, the dispatcher handles, one notifier
per adapter edits progress, the optional in-process worker runs jobs, and a housekeeping loop expires
approvals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.dispatcher import Dispatcher
from bot.health import NodeHealthWatcher
from bot.notifier import Notifier
from bot.relay import ClusterEventRelay
from bot.runtime import Runtime
from workers.worker import InProcessWorker

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_SECONDS = 2.0
"""How often due approval requests are expired and their cards edited."""


class Services:
    def __init__(self, *, runtime: Runtime, in_process_worker: bool) -> None:
        self.runtime = runtime
        self.dispatcher = Dispatcher(runtime=runtime)
        self.notifiers = [
            Notifier(
                redis=runtime.redis, adapter=adapter, edit_interval=runtime.settings.progress_edit_interval
            )
            for adapter in runtime.adapters.values()
        ]
        self.worker = (
            InProcessWorker(settings=runtime.settings, redis_url=runtime.store.url)
            if in_process_worker
            else None
        )
        self._housekeeping: asyncio.Task[None] | None = None
        self.health = NodeHealthWatcher(runtime=runtime) if runtime.alerts is not None else None
        self.relay = (
            ClusterEventRelay(redis=runtime.redis, alerts=runtime.alerts)
            if runtime.alerts is not None
            else None
        )

    async def start(self) -> None:
        for notifier in self.notifiers:
            await notifier.start()
        if self.runtime.alerts is not None:
            await self.runtime.alerts.start()
        if self.relay is not None:
            await self.relay.start()
        if self.health is not None:
            await self.health.start()
        for adapter in self.runtime.adapters.values():
            await adapter.start(self.dispatcher)
        if self.worker is not None:
            self.worker.start()
        self._housekeeping = asyncio.create_task(self._housekeep(), name="kobot-housekeeping")

    async def stop(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        for adapter in self.runtime.adapters.values():
            try:
                await adapter.stop()
            except Exception:
                log.exception("adapter %s did not stop cleanly", adapter.platform)
        if self.health is not None:
            await self.health.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self.runtime.alerts is not None:
            await self.runtime.alerts.stop()
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop)
        for notifier in self.notifiers:
            await notifier.stop()

    async def _housekeep(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_SECONDS)
            try:
                await self.dispatcher.expire_approvals()
            except Exception:
                log.exception("housekeeping failed; trying again")
