"""The release record: what kobot applied for one addon on one cluster.

It names the release, the chart and version, a hash of the values rendered with, the values a person
set, and every object applied. Upgrade and uninstall work from it, never from a label search, so they
touch exactly what kobot put there.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from pydantic import Field
from redis import Redis

from kobot import keys
from kobot.clock import utcnow
from kobot.deferred_models import DeferredModel
from kobot.store import synced
from workers.addons.manifests import ObjectRef

ADDON_PREFIX = f"{keys.PREFIX}:addon"


def release_key(cluster: str, addon: str) -> str:
    return f"{ADDON_PREFIX}:{cluster}:{addon}"


def releases_index(cluster: str) -> str:
    """Set: the addons installed on `cluster`."""
    return f"{ADDON_PREFIX}s:{cluster}"


def values_hash(values: dict[str, Any]) -> str:
    """Stable hash of the values a render used; the secrets in them never leave the worker."""
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ReleaseRecord(DeferredModel):
    cluster: str
    addon: str
    release: str
    namespace: str
    chart: str
    chart_version: str
    values_hash: str
    user_values: dict[str, str] = Field(default_factory=dict)
    """What a person set from chat (validated by the catalog); an upgrade keeps them."""
    objects: list[ObjectRef] = Field(default_factory=list)
    images: list[str] = Field(default_factory=list)
    """The image references the applied objects name (mirrored)."""
    job_id: str = ""
    installed_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ReleaseStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    def get(self, *, cluster: str, addon: str) -> ReleaseRecord | None:
        raw: bytes | None = synced(self._redis.get(release_key(cluster, addon)))
        return None if raw is None else ReleaseRecord.model_validate_json(raw)

    def save(self, record: ReleaseRecord) -> None:
        record.updated_at = utcnow()
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(release_key(record.cluster, record.addon), record.model_dump_json())
        pipe.sadd(releases_index(record.cluster), record.addon)
        pipe.execute()

    def delete(self, *, cluster: str, addon: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(release_key(cluster, addon))
        pipe.srem(releases_index(cluster), addon)
        pipe.execute()

    def installed(self, *, cluster: str) -> list[ReleaseRecord]:
        members: set[bytes] = synced(self._redis.smembers(releases_index(cluster)))
        names = sorted(m.decode() for m in members)
        found = [self.get(cluster=cluster, addon=name) for name in names]
        return [record for record in found if record is not None]
