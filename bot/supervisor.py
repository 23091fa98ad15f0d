"""The supervisor: starts and stops everything that runs in a kobot process around the runtime.

`kobot chat` and `kobot serve` both use it: adapters receive, the dispatcher handles, one notifier per
adapter edits progress, the optional in-process worker runs jobs, the alert service delivers alerts, the
relay and the node watcher feed cluster events to it, and a housekeeping loop expires approvals.
"""

from __future__ import annotations

import asyncio
import logging

from bot.dispatcher import Dispatcher
from bot.node_watch import NodeReadinessWatcher
from bot.notifier import Notifier
from bot.relay import ClusterEventRelay
from bot.runtime import Runtime
from kobot.background import BackgroundTask, every
from workers.worker import InProcessWorker

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_SECONDS = 2.0
"""How often due approval requests are expired and their cards edited."""


class Supervisor:
    """Owns the long-lived parts of one kobot process: `start` brings them up (adapters after what they
    feed, so nothing they receive is lost), `stop` takes them down in the reverse order."""

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
        self._housekeeping = BackgroundTask("kobot-housekeeping")
        self.node_watch = NodeReadinessWatcher(runtime=runtime) if runtime.alerts is not None else None
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
        if self.node_watch is not None:
            await self.node_watch.start()
        for adapter in self.runtime.adapters.values():
            await adapter.start(self.dispatcher)
        if self.worker is not None:
            self.worker.start()
        self._housekeeping.start(
            every(
                HOUSEKEEPING_INTERVAL_SECONDS,
                self.dispatcher.expire_approvals,
                log=log,
                what="housekeeping",
                wait_first=True,
            )
        )

    async def stop(self) -> None:
        await self._housekeeping.stop()
        for adapter in self.runtime.adapters.values():
            try:
                await adapter.stop()
            except Exception:
                log.exception("adapter %s did not stop cleanly", adapter.platform)
        if self.node_watch is not None:
            await self.node_watch.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self.runtime.alerts is not None:
            await self.runtime.alerts.stop()
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop)
        for notifier in self.notifiers:
            await notifier.stop()
