"""The running kobot: one object holding settings, store, queue, stores, services and adapters.

Built once by `build_runtime(settings)` and passed to whoever needs it; nothing reaches for globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis import Redis

import commands.handlers
from bot.approvals import ApprovalService
from bot.policy import PolicyStore
from commands.catalog import commands_loaded, load_commands
from commands.registry import CommandSpec, Handler
from kobot.audit import AuditLog
from kobot.chat import ChatAdapter
from kobot.clusters import ClusterStore
from kobot.settings import Settings
from kobot.store import Store, open_store, secret_key
from workers.ippool import IpPools
from workers.operations import load_operations
from workers.service import JobService

if TYPE_CHECKING:
    from redis.asyncio import Redis as AsyncRedis
    from rq import Queue

    from alerts.service import AlertClickOutcome, AlertService
    from alerts.store import AlertStore, IngestResult
    from kobot.conversations import ButtonClick
    from kobot.messages import OutgoingMessage

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What every long-lived part of kobot is built from."""

    settings: Settings
    store: Store
    redis: Redis
    secret: bytes
    jobs: JobService
    clusters: ClusterStore
    policy: PolicyStore
    approvals: ApprovalService
    audit: AuditLog
    adapters: dict[str, ChatAdapter] = field(default_factory=dict)
    alerts: AlertService | AlertPipeline | None = None

    @property
    def queue(self) -> Queue:
        """RQ's queue of this kobot's jobs (made, and RQ imported, by its first use)."""
        return self.jobs.queue

    def close(self) -> None:
        self.store.close()


class AlertPipeline:
    """The alert service of `kobot serve`, built on a thread once serve answers: importing the delivery
    pipeline (rendering, the runbook buttons, silences) and building it would hold the interpreter while
    it comes up. The webhook writes to the pipeline's store from the first request (delivery starts with
    what it finds stored); a click or a notice that comes before the build waits for it, on a thread, never
    on the event loop. Offers what the rest of kobot uses of an `AlertService`."""

    def __init__(self, *, store: AlertStore, build: Callable[[], AlertService], start_delay: float) -> None:
        """`build` runs once, on a thread, and makes a service owning `store`; `start_delay`: how long after
        `start` the delivery loop (and the recovery of what a previous process left) starts, unless a use
        builds the service sooner (the loop still starts then)."""
        self.store = store
        self._build = build
        self._start_delay = start_delay
        self._building = threading.Lock()
        self._service: AlertService | None = None
        self._starting: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def redis(self) -> AsyncRedis:
        """The message center's async client (the store's, which the service takes over)."""
        return self.store.redis

    @property
    def is_built(self) -> bool:
        return self._service is not None

    def built(self) -> AlertService:
        """The service, building it now when no one has yet (blocking: call it on a thread)."""
        with self._building:
            if self._service is None:
                if self._stopped:
                    raise RuntimeError("the alert pipeline has stopped: kobot is shutting down")
                self._service = self._build()
            return self._service

    async def service(self) -> AlertService:
        return self._service if self._service is not None else await asyncio.to_thread(self.built)

    async def stored(self, result: IngestResult) -> None:
        """The webhook stored `result`: a built service delivers it now; else its loop finds it at start."""
        if self._service is not None:
            await self._service.stored(result)

    @property
    def starting(self) -> asyncio.Task[None] | None:
        """The build and start set off by `start` (None before it, or after a stop)."""
        return self._starting

    async def start(self) -> None:
        """Build the service and start its delivery loop `start_delay` from now, off the start's path."""
        if self._starting is None:
            self._starting = asyncio.create_task(self._start_soon(), name="alert-pipeline-start")

    async def _start_soon(self) -> None:
        await asyncio.sleep(self._start_delay)
        try:
            service = await self.service()
        except Exception:
            # said now, not at the first click; a use retries the build and fails with what went wrong
            log.exception("building the alert pipeline failed")
            return
        await service.start()

    async def stop(self) -> None:
        starting, self._starting = self._starting, None
        if starting is not None:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        # A build already on its thread runs on after the cancel: it ends first, and the service it made
        # (owner of the store's client) is stopped, instead of appearing after the client was closed.
        await asyncio.to_thread(self._end_building)
        if self._service is not None:
            await self._service.stop()
        else:
            await self.store.redis.aclose()

    def _end_building(self) -> None:
        with self._building:
            self._stopped = True

    async def handle_click(self, click: ButtonClick) -> AlertClickOutcome:
        return await (await self.service()).handle_click(click)

    async def publish_cluster_event(
        self, *, cluster: str, event: str, message: OutgoingMessage, posted_in: str | None = None
    ) -> None:
        service = await self.service()
        await service.publish_cluster_event(
            cluster=cluster, event=event, message=message, posted_in=posted_in
        )


_handlers_loading = threading.Lock()
_handlers_loaded = threading.Event()


def load_handlers() -> None:
    """Attach every command's handler, kobot's own and the alert commands' (a no-op once done).

    One thread imports them at a time: `@handles` attaches a handler while its module is still running,
    so a handler seen before the whole load ended could call a helper defined below it. The built-in
    operations come first: the `submit` handler checks a job kind against them."""
    if _handlers_loaded.is_set():
        return
    with _handlers_loading:
        if not _handlers_loaded.is_set():
            load_commands()  # first: the parser a waiting chat event needs (`catalog_loaded`)
            load_operations()
            commands.handlers.load_all()
            importlib.import_module("alerts.commands")
            _handlers_loaded.set()


async def catalog_loaded() -> None:
    """Every command's definition, imported on a thread when nothing has loaded them yet (`kobot serve`
    loads them with the handlers once it answers). Parsing the first event did it on the event loop, and
    every request behind it waited: acks of ~100 ms right after a start."""
    if not commands_loaded():
        await asyncio.to_thread(load_commands)


async def handler_of(spec: CommandSpec[Any]) -> Handler[Any] | None:
    """The command's handler once every handler is attached (`kobot serve` loads them after it answers;
    a command that comes sooner waits for that load on a thread, never on the event loop); None for a
    command no handler exists for."""
    if not _handlers_loaded.is_set():
        await asyncio.to_thread(load_handlers)
    return spec.handler


def build_runtime(settings: Settings, *, store: Store | None = None, handlers: bool = True) -> Runtime:
    """Open the store (starting the embedded Valkey when no URL is set), the queue and the stores.

    `store`: one already opened for these settings (`kobot serve` opens it while it imports the rest).
    `handlers`: attach every command's handler (and register the built-in operations) now; `kobot serve`
    says False and loads them once it answers: a command that comes first loads them itself
    (`handler_of`), a job submitted first its operation (`operation_for`).
    """
    for module in settings.plugins:  # a plugin registers its operations and commands on import
        importlib.import_module(module)
    if handlers:
        load_handlers()
    store = store or open_store(settings)
    redis = store.client()
    secret = secret_key(settings)
    pools = IpPools(redis)
    for pool in settings.ip_pools:
        pools.configure(pool=pool)
    policy = PolicyStore(path=settings.policy_file, redis=redis)
    return Runtime(
        settings=settings,
        store=store,
        redis=redis,
        secret=secret,
        jobs=JobService(redis=redis, queue_name=settings.queue_name),
        clusters=ClusterStore(redis),
        policy=policy,
        approvals=ApprovalService(redis=redis, secret=secret, policy=policy),
        audit=AuditLog(redis=redis, store_url=store.url),
    )
