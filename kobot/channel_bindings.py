"""Channels bound to a cluster from chat (`use prod here`), so commands there may leave the cluster out.

The policy file can bind channels too; a binding made in chat wins until `unbind` removes it, which brings
the file's binding back. A binding only fills in a missing cluster name: permissions are still checked on
that cluster, so binding a channel grants nobody anything.

Every command reads its channel's binding, on the event loop, and `whoami` reads it twice: a process keeps
what it read for `CHANNEL_BINDING_CACHE_SECONDS`, per store connection. A bind or unbind through this
class drops the process's copy at once; another process sees it within that bound.
"""

from __future__ import annotations

import threading
import time
import weakref

from redis import Redis

from kobot import keys
from kobot.defaults import CHANNEL_BINDING_CACHE_SECONDS
from kobot.store import synced

CACHED_CHANNELS_MAX = 10_000
"""Channels whose binding one store connection keeps at most; past it the copies start over."""

_Cached = dict[str, tuple[float, str | None]]
_CACHES: weakref.WeakKeyDictionary[Redis, _Cached] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _cache_of(redis: Redis) -> _Cached:
    with _LOCK:
        cache = _CACHES.get(redis)
        if cache is None:
            cache = _CACHES[redis] = {}
        return cache


class ChannelBindings:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._cache = _cache_of(redis)

    def get(self, conversation_key: str) -> str | None:
        now = time.monotonic()
        cached = self._cache.get(conversation_key)
        if cached is not None and now - cached[0] < CHANNEL_BINDING_CACHE_SECONDS:
            return cached[1]
        raw: bytes | None = synced(self._redis.get(keys.channel_binding(conversation_key)))
        value = None if raw is None else raw.decode()
        if len(self._cache) >= CACHED_CHANNELS_MAX:
            self._cache.clear()
        self._cache[conversation_key] = (now, value)
        return value

    def bind(self, conversation_key: str, cluster: str) -> str | None:
        """Bind the channel; returns the cluster it was bound to before (from chat), if any."""
        self._cache.pop(conversation_key, None)
        previous: bytes | None = synced(
            self._redis.set(keys.channel_binding(conversation_key), cluster, get=True)
        )
        self._cache.pop(conversation_key, None)
        return None if previous is None else previous.decode()

    def unbind(self, conversation_key: str) -> str | None:
        """Remove the chat binding; returns the cluster it named, or None when there was none."""
        self._cache.pop(conversation_key, None)
        previous: bytes | None = synced(self._redis.getdel(keys.channel_binding(conversation_key)))
        self._cache.pop(conversation_key, None)
        return None if previous is None else previous.decode()
