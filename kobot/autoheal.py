"""Autoheal's records: the per-cluster setting (`autoheal prod on after=10m max-unhealthy=20%`) and what
the watcher keeps between rounds (since when each node is NotReady, the one replacement under way, what
it already told the channels). The command writes the setting; the bot's watcher reads both."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field
from redis import Redis

from kobot import defaults, keys
from kobot.clock import utcnow
from kobot.deferred_models import DeferredModel
from kobot.store import synced

SINCE_PREFIX = "since:"
ACTION_FIELD = "action"
SAID_PREFIX = "said:"


class AutohealSetting(DeferredModel):
    """Whether kobot replaces this cluster's NotReady workers by itself, and its two limits."""

    model_config = ConfigDict(frozen=True)

    enabled: bool
    after_seconds: int = defaults.AUTOHEAL_AFTER_SECONDS_DEFAULT
    max_unhealthy_percent: int = Field(default=defaults.AUTOHEAL_MAX_UNHEALTHY_PERCENT_DEFAULT, ge=0, le=100)
    set_by: str = ""
    set_at: datetime = Field(default_factory=utcnow)


class AutohealAction(DeferredModel):
    """The one replacement under way on a cluster: its approval request until approved, then its job."""

    node: str
    approval_id: str | None = None
    job_id: str | None = None
    started_at: datetime = Field(default_factory=utcnow)


class AutohealStore:
    """Reads and writes autoheal's keys of one Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    # the setting -----------------------------------------------------------------------------
    def setting(self, cluster: str) -> AutohealSetting | None:
        raw = synced(self._redis.get(keys.autoheal_setting(cluster)))
        return None if raw is None else AutohealSetting.model_validate_json(raw)

    def save_setting(self, cluster: str, setting: AutohealSetting) -> None:
        self._redis.set(keys.autoheal_setting(cluster), setting.model_dump_json())
        if not setting.enabled:
            # turned off: nothing under way is followed any more, and a later `on` starts afresh
            self._redis.delete(keys.autoheal_watch(cluster))

    # what the watcher keeps ------------------------------------------------------------------
    def not_ready_since(self, cluster: str) -> dict[str, datetime]:
        held = synced(self._redis.hgetall(keys.autoheal_watch(cluster)))
        return {
            k.decode().removeprefix(SINCE_PREFIX): datetime.fromisoformat(v.decode())
            for k, v in held.items()
            if k.decode().startswith(SINCE_PREFIX)
        }

    def track(self, cluster: str, *, not_ready: set[str], now: datetime) -> dict[str, datetime]:
        """Remember when each node was first seen NotReady; forget nodes that are Ready (or gone) again,
        with what was said about them. Returns node -> NotReady since."""
        before = self.not_ready_since(cluster)
        key = keys.autoheal_watch(cluster)
        fields = [k.decode() for k in synced(self._redis.hkeys(key))]
        pipe = self._redis.pipeline()
        for node in set(before) - not_ready:
            told = [f for f in fields if f.startswith(SAID_PREFIX) and f.rsplit(":", 1)[-1] == node]
            pipe.hdel(key, SINCE_PREFIX + node, *told)
        for node in not_ready - set(before):
            pipe.hset(key, SINCE_PREFIX + node, now.isoformat())
        pipe.execute()
        return {node: before.get(node, now) for node in not_ready}

    def action(self, cluster: str) -> AutohealAction | None:
        raw = synced(self._redis.hget(keys.autoheal_watch(cluster), ACTION_FIELD))
        return None if raw is None else AutohealAction.model_validate_json(raw)

    def save_action(self, cluster: str, action: AutohealAction | None) -> None:
        key = keys.autoheal_watch(cluster)
        if action is None:
            self._redis.hdel(key, ACTION_FIELD)
        else:
            self._redis.hset(key, ACTION_FIELD, action.model_dump_json())

    def said(self, cluster: str, topic: str) -> bool:
        """Whether `topic` (`kind:node`, or `outage`) was told already; marks it told. A node's topics
        are forgotten once it is Ready again."""
        return not self._redis.hsetnx(keys.autoheal_watch(cluster), SAID_PREFIX + topic, "1")

    def has_said(self, cluster: str, topic: str) -> bool:
        return bool(self._redis.hexists(keys.autoheal_watch(cluster), SAID_PREFIX + topic))

    def unsay(self, cluster: str, topic: str) -> None:
        self._redis.hdel(keys.autoheal_watch(cluster), SAID_PREFIX + topic)
