"""The running kobot: one object holding settings, store, queue, stores, services and adapters.

Built once by `build_runtime(settings)` and passed to whoever needs it; nothing reaches for globals.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from alerts.service import AlertService
from bot.approvals import ApprovalService
from bot.policy import PolicyStore
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


def build_runtime(settings: Settings, *, store: Store | None = None) -> Runtime:
    """Open the store (starting the embedded Valkey when no URL is set), the queue and the stores.

    `store`: one already opened for these settings (`kobot serve` opens it while it imports the rest).
    """
    for module in settings.plugins:
        importlib.import_module(module)
    load_operations(settings.plugins)
    importlib.import_module("commands.handlers")
    importlib.import_module("alerts.commands")
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
        audit=AuditLog(redis=redis),
    )
