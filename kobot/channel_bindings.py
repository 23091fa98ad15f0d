"""Channels bound to a cluster from chat (`use prod here`), so commands there may leave the cluster out.

The policy file can bind channels too; a binding made in chat wins until `unbind` removes it, which brings
the file's binding back. A binding only fills in a missing cluster name: permissions are still checked on
that cluster, so binding a channel grants nobody anything.
"""

from __future__ import annotations

from redis import Redis

from kobot import keys
from kobot.store import synced


class ChannelBindings:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    def get(self, conversation_key: str) -> str | None:
        raw: bytes | None = synced(self._redis.get(keys.channel_binding(conversation_key)))
        return None if raw is None else raw.decode()

    def bind(self, conversation_key: str, cluster: str) -> str | None:
        """Bind the channel; returns the cluster it was bound to before (from chat), if any."""
        previous: bytes | None = synced(
            self._redis.set(keys.channel_binding(conversation_key), cluster, get=True)
        )
        return None if previous is None else previous.decode()

    def unbind(self, conversation_key: str) -> str | None:
        """Remove the chat binding; returns the cluster it named, or None when there was none."""
        previous: bytes | None = synced(self._redis.getdel(keys.channel_binding(conversation_key)))
        return None if previous is None else previous.decode()
