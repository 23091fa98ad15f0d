"""The running kobot: one object holding settings, store, queue, stores, services and adapters.

Built once by `build_runtime(settings)` and passed to whoever needs it; nothing reaches for globals.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

import commands.handlers
from alerts.service import AlertService
from bot.approvals import ApprovalService
from bot.policy import PolicyStore
from commands.registry import CommandSpec, Handler
from kobot.audit import AuditLog
from kobot.chat import ChatAdapter
from kobot.clusters import ClusterStore
from kobot.settings import Settings
from kobot.store import Store, open_store, secret_key
from workers.ippool import IpPools
from workers.operations import load_operations
from workers.service import JobService


@dataclass
class Runtime:
    """What every long-lived part of kobot is built from."""

    settings: Settings
    store: Store
    redis: Redis
    queue: Queue
    secret: bytes
    jobs: JobService
    clusters: ClusterStore
    policy: PolicyStore
    approvals: ApprovalService
    audit: AuditLog
    adapters: dict[str, ChatAdapter] = field(default_factory=dict)
    alerts: AlertService | None = None

    def close(self) -> None:
        self.store.close()


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
            load_operations()
            commands.handlers.load_all()
            importlib.import_module("alerts.commands")
            _handlers_loaded.set()


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
    queue = Queue(settings.queue_name, connection=redis, serializer=JSONSerializer)
    secret = secret_key(settings)
    pools = IpPools(redis)
    for pool in settings.ip_pools:
        pools.configure(pool=pool)
    policy = PolicyStore(path=settings.policy_file, redis=redis)
    return Runtime(
        settings=settings,
        store=store,
        redis=redis,
        queue=queue,
        secret=secret,
        jobs=JobService(redis=redis, queue=queue),
        clusters=ClusterStore(redis),
        policy=policy,
        approvals=ApprovalService(redis=redis, secret=secret, policy=policy),
        audit=AuditLog(redis=redis, store_url=store.url),
    )
