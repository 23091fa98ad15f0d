"""The supervisor: starts and stops everything that runs in a kobot process around the runtime.

`kobot chat` and `kobot serve` both use it: adapters receive, the dispatcher handles, one notifier per
adapter edits progress, the optional in-process worker runs jobs, the alert service delivers alerts, the
relay and the node watcher feed cluster events to it, and a housekeeping loop expires approvals.

Every such process sweeps what dead workers left (in the in-process worker, or on its own when jobs run
in separate `kobot worker` processes), so a job whose only worker died is failed within its lease even
while no worker runs.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from bot.dispatcher_soon import AutohealSoon, DispatcherSoon
from bot.node_watch import NodeReadinessWatcher
from bot.notifier import Notifier
from bot.relay import ClusterEventRelay
from bot.runtime import Runtime
from kobot import defaults
from kobot.background import BackgroundTask, every
from kobot.clock import utcnow
from workers.backup_schedule import run_due
from workers.worker import InProcessWorker, Sweeper

if TYPE_CHECKING:
    from workers.health_schedule import HealthCheckScheduler

SCHEDULER_MODULES = ("workers.health_schedule", "workers.compliance.schedule")
"""The health-check and scan schedulers: imported on a thread once serve answers (with the cards and
result parsers they bring), not on the way to it."""

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_SECONDS = 2.0
"""How often due approval requests are expired (their cards edited) and approved requests a crash left
without their job get it."""


class Supervisor:
    """Owns the long-lived parts of one kobot process: `start` brings them up (adapters after what they
    feed, so nothing they receive is lost), `stop` takes them down in the reverse order."""

    def __init__(
        self, *, runtime: Runtime, in_process_worker: bool, start_jobs_after: float | None = None
    ) -> None:
        """`start_jobs_after`: start the in-process worker (or the recovery sweep alone) that many seconds
        after `start`, on a thread (`kobot serve`: once it answers); None starts them in `start`."""
        self.runtime = runtime
        self._start_jobs_after = start_jobs_after
        # the dispatcher is imported and built by its first use (`kobot serve` asks a moment after it
        # answers, unless an event or an autoheal round comes sooner)
        self.dispatching = DispatcherSoon(runtime=runtime)
        self.notifiers = [
            Notifier(
                redis=runtime.redis,
                adapter=adapter,
                edit_interval=runtime.settings.progress_edit_interval,
                secret=runtime.secret,
            )
            for adapter in runtime.adapters.values()
        ]
        self.worker = (
            InProcessWorker(settings=runtime.settings, redis_url=runtime.store.url)
            if in_process_worker
            else None
        )
        # the in-process worker sweeps before it takes jobs; without it this process sweeps on its own
        self.sweeper = (
            Sweeper(settings=runtime.settings, redis_url=runtime.store.url) if self.worker is None else None
        )
        self._housekeeping = BackgroundTask("kobot-housekeeping")
        self._backup_schedules = BackgroundTask("kobot-backup-schedules")
        self._scan_schedules = BackgroundTask("kobot-scan-schedules")
        self.node_watch = (
            NodeReadinessWatcher(
                runtime=runtime,
                autoheal=AutohealSoon(self.dispatching),
            )
            if runtime.alerts is not None
            else None
        )
        # built by `start`, a moment after it returns (`_start_schedulers_soon`)
        self.health_checks: HealthCheckScheduler | None = None
        self._schedulers_soon: asyncio.Task[None] | None = None
        self._jobs_soon: asyncio.Task[None] | None = None
        self._jobs_starting: asyncio.Future[None] | None = None
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
            await adapter.start(self.dispatching)
        if self._start_jobs_after is None:
            self._start_jobs()
        else:
            self._jobs_soon = asyncio.create_task(
                self._start_jobs_soon(self._start_jobs_after), name="kobot-jobs-start"
            )
        self._housekeeping.start(
            every(
                HOUSEKEEPING_INTERVAL_SECONDS,
                self._housekeep,
                log=log,
                what="housekeeping",
                wait_first=True,
            )
        )
        self._schedulers_soon = asyncio.create_task(
            self._start_schedulers_soon(), name="kobot-schedulers-start"
        )

        # at once on start: a run missed while kobot was down starts now (once)
        self._backup_schedules.start(
            every(
                defaults.BACKUP_SCHEDULER_INTERVAL_SECONDS,
                lambda: asyncio.to_thread(lambda: run_due(service=self.runtime.jobs, now=utcnow())),
                log=log,
                what="backup schedules",
            )
        )

    def loads_after_start(self) -> list[asyncio.Task[None]]:
        """What `start` set off to load a moment later that may still run: the jobs' start (RQ and the
        recovery sweep's modules) and the schedulers' (their modules)."""
        return [task for task in (self._jobs_soon, self._schedulers_soon) if task is not None]

    async def _start_jobs_soon(self, delay: float) -> None:
        """Start the in-process worker, or the recovery sweep alone, on a thread once serve answers
        (`kobot serve` listens after `start` returns): the first sweep and the worker's first rounds
        (registering with RQ, cleaning its registries) held the interpreter on the way to ready. A job
        queued meanwhile waits for them as it would for any worker; a dead worker's job is still failed
        within its lease. While the store does not answer, the start is tried again; any other failure
        is logged, and no job runs in this process until it is restarted."""
        await asyncio.sleep(delay)
        while True:
            # shielded: `stop` waits a while for a start under way; a worker stopped first never starts
            self._jobs_starting = asyncio.ensure_future(asyncio.to_thread(self._start_jobs))
            try:
                await asyncio.shield(self._jobs_starting)
                return
            except RedisError as exc:
                log.warning(
                    "the in-process worker and the recovery sweep wait for the store (%s); trying again in "
                    "%.0f s",
                    exc,
                    defaults.JOBS_START_RETRY_SECONDS,
                )
            except Exception:
                log.exception("the in-process worker (or the recovery sweep) did not start: no job runs here")
                return
            await asyncio.sleep(defaults.JOBS_START_RETRY_SECONDS)

    def _start_jobs(self) -> None:
        if self.worker is not None:
            self.worker.start()
        if self.sweeper is not None:
            self.sweeper.start()

    async def _start_schedulers_soon(self) -> None:
        """Start the scheduled health checks and scans once serve answers (`kobot serve` listens after
        `start` returns): their modules load on a thread meanwhile, not on the way to ready."""
        await asyncio.sleep(defaults.HANDLERS_LOAD_DELAY_SECONDS)
        try:
            modules = await asyncio.to_thread(lambda: [importlib.import_module(m) for m in SCHEDULER_MODULES])
        except Exception:
            log.exception("loading the health-check and scan schedulers failed; neither runs")
            return
        health_schedule, scan_schedule = modules
        from workers.cluster_secrets import ClusterSecrets  # loaded with the schedulers, on their thread

        runtime = self.runtime
        if runtime.alerts is not None:
            self.health_checks = health_schedule.HealthCheckScheduler(
                redis=runtime.redis,
                secrets=ClusterSecrets(redis=runtime.redis, secret=runtime.secret),
                publisher=runtime.alerts,
                notice_days=runtime.settings.health.cert_notice_days,
            )
            await self.health_checks.start()
        # at once: a scan missed while kobot was down starts now (once)
        self._scan_schedules.start(
            every(
                defaults.CIS_SCHEDULER_INTERVAL_SECONDS,
                lambda: scan_schedule.scheduler_round(
                    service=runtime.jobs, adapters=runtime.adapters, now=utcnow()
                ),
                log=log,
                what="scan schedules",
            )
        )

    async def _housekeep(self) -> None:
        dispatcher = await self.dispatching.dispatcher()
        try:
            await dispatcher.expire_approvals()
        finally:
            await dispatcher.approvals.run_unrun()

    async def stop(self) -> None:
        """Stop everything, each part even when another failed (the store may be down).

        The worker stops first, so the job it ran ends (cancelled, resumable) and announces it; the
        notifiers then deliver what is left of the event stream while the adapters can still post; the
        adapters go last."""
        for soon in (self._jobs_soon, self._schedulers_soon):
            if soon is not None:
                soon.cancel()
                await asyncio.gather(soon, return_exceptions=True)
        self._jobs_soon = self._schedulers_soon = None
        if self._jobs_starting is not None:
            # bounded: a start stuck on a store that stopped answering must not hold up the rest (the
            # worker's own stop keeps it from starting afterwards)
            await asyncio.wait([self._jobs_starting], timeout=defaults.JOBS_START_STOP_WAIT_SECONDS)
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("housekeeping", self._housekeeping.stop),
            ("backup schedules", self._backup_schedules.stop),
            ("scan schedules", self._scan_schedules.stop),
        ]
        if self.worker is not None:
            steps.append(("the in-process worker", _in_thread(self.worker.stop)))
        if self.sweeper is not None:
            steps.append(("the recovery sweep", _in_thread(self.sweeper.stop)))
        if self.node_watch is not None:
            steps.append(("the node watcher", self.node_watch.stop))
        if self.health_checks is not None:
            steps.append(("scheduled health checks", self.health_checks.stop))
        if self.relay is not None:
            steps.append(("the cluster event relay", self.relay.stop))
        if self.runtime.alerts is not None:
            steps.append(("alert delivery", self.runtime.alerts.stop))
        for notifier in self.notifiers:
            steps.append((f"the {notifier.platform} notifier", _draining(notifier)))
        for adapter in self.runtime.adapters.values():
            steps.append((f"the {adapter.platform} adapter", adapter.stop))
        for what, stop in steps:
            try:
                await stop()
            except Exception:
                log.exception("%s did not stop cleanly; stopping the rest", what)


def _in_thread(stop: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    return lambda: asyncio.to_thread(stop)


def _draining(notifier: Notifier) -> Callable[[], Awaitable[None]]:
    return lambda: notifier.stop(drain_seconds=defaults.NOTIFIER_DRAIN_SECONDS)
