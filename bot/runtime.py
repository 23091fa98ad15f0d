"""The running kobot: one object holding settings, store, queue, stores, adapters and the dispatcher.

Built once by `build_runtime(settings)` and passed to whoever needs it; nothing reaches for globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from bot.settings import Settings
from bot.store import Store, open_store, secret_key

if TYPE_CHECKING:
    from bot.chat.base import ChatAdapter


@dataclass
class Runtime:
    """What every long-lived part of kobot is built from."""

    settings: Settings
    store: Store
    redis: Redis
    queue: Queue
    secret: bytes
    adapters: dict[str, ChatAdapter] = field(default_factory=dict)

    def close(self) -> None:
        self.store.close()


def build_runtime(settings: Settings) -> Runtime:
    """Open the store (starting the embedded Valkey when no URL is set) and the job queue."""
    store = open_store(settings)
    redis = store.client()
    queue = Queue(settings.queue_name, connection=redis, serializer=JSONSerializer)
    return Runtime(settings=settings, store=store, redis=redis, queue=queue, secret=secret_key(settings))
