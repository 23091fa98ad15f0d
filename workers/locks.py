"""One mutating job per cluster: a holder key and a FIFO of waiting jobs, changed atomically in Lua.

RQ's own RateLimit would also serialize, but a worker killed with SIGKILL leaves its slot taken until
RQ's abandoned-job cleanup runs; kobot's recovery sweep must be able to release a cluster at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from kobot import keys
from kobot.store import synced

_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if not holder or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1])
  return {1, ARGV[1]}
end
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[1])
return {0, holder}
"""

_RELEASE = """
local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[1] then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  return false
end
local nxt = redis.call('LPOP', KEYS[2])
if nxt then
  redis.call('SET', KEYS[1], nxt)
  return nxt
end
redis.call('DEL', KEYS[1])
return false
"""


@dataclass(frozen=True)
class Acquired:
    granted: bool
    holder: str
    """The job holding the cluster: this job when granted, the one it waits for otherwise."""


class ClusterLocks:
    """Who holds each cluster, and who waits for it, in arrival order."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)

    def acquire(self, *, cluster: str, job_id: str) -> Acquired:
        granted, holder = self._acquire(
            keys=[keys.cluster_holder(cluster), keys.cluster_waiting(cluster)], args=[job_id]
        )
        return Acquired(
            granted=bool(granted), holder=holder.decode() if isinstance(holder, bytes) else str(holder)
        )

    def release(self, *, cluster: str, job_id: str) -> str | None:
        """Release the cluster (or leave the queue); returns the job that now holds it, if any."""
        nxt = self._release(keys=[keys.cluster_holder(cluster), keys.cluster_waiting(cluster)], args=[job_id])
        if not nxt:
            return None
        return nxt.decode() if isinstance(nxt, bytes) else str(nxt)

    def holder(self, cluster: str) -> str | None:
        raw: bytes | None = synced(self._redis.get(keys.cluster_holder(cluster)))
        return None if raw is None else raw.decode()

    def waiting(self, cluster: str) -> list[str]:
        return [item.decode() for item in synced(self._redis.lrange(keys.cluster_waiting(cluster), 0, -1))]
