"""Routes and event subscriptions managed from the chat, kept in Redis across restarts.

`subscribe alerts prod severity>=warning` adds an alert route for the conversation it was typed in;
`notify prod jobs,backups here` subscribes the conversation to cluster events (the message center).
Command handlers use the synchronous client of the runtime; the service reads through its own
async client.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from pydantic import ConfigDict, Field
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from alerts import keys
from alerts.routing import Subscription
from alerts.store import result
from kobot.deferred_models import DeferredModel
from kobot.settings_alerts import RouteTarget

ALL_CLUSTERS = "*"
"""A subscription for every cluster."""


class ClusterEvent(str, Enum):
    """What the message center can tell a channel about a cluster."""

    JOB_STARTED = "job_started"
    JOB_SUCCEEDED = "job_succeeded"
    JOB_FAILED = "job_failed"
    APPROVAL_NEEDED = "approval_needed"
    BACKUP_SUCCEEDED = "backup_succeeded"
    BACKUP_FAILED = "backup_failed"
    NODE_NOT_READY = "node_not_ready"
    NODE_READY = "node_ready"
    CERT_EXPIRY_NEAR = "cert_expiry_near"
    HEALTH_WORSENED = "health_worsened"
    NODE_HEALTH_WORSENED = "node_health_worsened"
    """A worse scheduled health check, its node findings only (what `node` channels may hear)."""


EVENT_GROUPS: dict[str, tuple[ClusterEvent, ...]] = {
    "all": tuple(ClusterEvent),
    "jobs": (ClusterEvent.JOB_STARTED, ClusterEvent.JOB_SUCCEEDED, ClusterEvent.JOB_FAILED),
    "approvals": (ClusterEvent.APPROVAL_NEEDED,),
    "backups": (ClusterEvent.BACKUP_SUCCEEDED, ClusterEvent.BACKUP_FAILED),
    "nodes": (ClusterEvent.NODE_NOT_READY, ClusterEvent.NODE_READY, ClusterEvent.NODE_HEALTH_WORSENED),
    "certificates": (ClusterEvent.CERT_EXPIRY_NEAR,),
    "health": (ClusterEvent.HEALTH_WORSENED,),
    "failures": (ClusterEvent.JOB_FAILED, ClusterEvent.BACKUP_FAILED, ClusterEvent.NODE_NOT_READY),
    "job": (ClusterEvent.JOB_STARTED, ClusterEvent.JOB_SUCCEEDED, ClusterEvent.JOB_FAILED),
    "approval": (ClusterEvent.APPROVAL_NEEDED,),
    "backup": (ClusterEvent.BACKUP_SUCCEEDED, ClusterEvent.BACKUP_FAILED),
    "node": (ClusterEvent.NODE_NOT_READY, ClusterEvent.NODE_READY, ClusterEvent.NODE_HEALTH_WORSENED),
    "certificate": (ClusterEvent.CERT_EXPIRY_NEAR,),
}
"""Words a user may type instead of listing events one by one."""


def parse_events(words: Iterable[str]) -> tuple[ClusterEvent, ...]:
    """Events named by `words` (event names, group words, comma lists); ValueError names the unknown word."""
    chosen: dict[ClusterEvent, None] = {}
    for word in words:
        for part in word.replace(",", " ").split():
            name = part.strip().lower().replace("-", "_")
            if name in EVENT_GROUPS:
                chosen.update(dict.fromkeys(EVENT_GROUPS[name]))
                continue
            try:
                chosen[ClusterEvent(name)] = None
            except ValueError:
                known = ", ".join([*EVENT_GROUPS, *(e.value for e in ClusterEvent)])
                raise ValueError(f"unknown event {part!r}; known: {known}") from None
    if not chosen:
        raise ValueError("name at least one event, e.g. jobs, backups, nodes or all")
    return tuple(chosen)


class NotifySubscription(DeferredModel):
    """A conversation that wants some events of a cluster (or of every cluster)."""

    model_config = ConfigDict(frozen=True)

    target: RouteTarget
    cluster: str
    events: tuple[ClusterEvent, ...] = Field(min_length=1)
    created_by: str = ""

    @property
    def key(self) -> str:
        return f"{self.target.key}|{self.cluster}"

    every_namespace: bool = False
    """Its creator could read every namespace of the cluster when it was set: only then does it hear the
    whole health notice (pod and volume names of every namespace); a subscription without it, one kept
    from before this was asked, hears the node findings instead."""

    def wants(self, *, cluster: str, event: str) -> bool:
        chosen = {e.value for e in self.events}
        health = ClusterEvent.HEALTH_WORSENED.value
        node_health = ClusterEvent.NODE_HEALTH_WORSENED.value
        if health in chosen and not self.every_namespace:
            chosen.discard(health)
            chosen.add(node_health)
        # `node` subscriptions kept from before health checks existed hear their node findings too
        if ClusterEvent.NODE_NOT_READY.value in chosen:
            chosen.add(node_health)
        if health in chosen:
            chosen.discard(node_health)  # the whole notice holds the node findings already
        return self.cluster in (cluster, ALL_CLUSTERS) and event in chosen


def save_alert_subscription(redis: Redis, subscription: Subscription) -> None:
    redis.hset(keys.SUBSCRIPTIONS, subscription.key, subscription.model_dump_json())


def remove_alert_subscription(redis: Redis, *, target: RouteTarget, cluster: str) -> bool:
    return bool(redis.hdel(keys.SUBSCRIPTIONS, f"{target.key}|{cluster}"))


def alert_subscriptions_of(redis: Redis, *, target: RouteTarget) -> list[Subscription]:
    raw: dict[bytes, bytes] = redis.hgetall(keys.SUBSCRIPTIONS)  # type: ignore[assignment]
    found = [Subscription.model_validate_json(value) for value in raw.values()]
    return [s for s in found if s.target.key == target.key]


def save_notify_subscription(redis: Redis, subscription: NotifySubscription) -> None:
    redis.hset(keys.NOTIFY, subscription.key, subscription.model_dump_json())


def notify_subscriptions_of(redis: Redis, *, target: RouteTarget) -> list[NotifySubscription]:
    raw: dict[bytes, bytes] = redis.hgetall(keys.NOTIFY)  # type: ignore[assignment]
    found = [NotifySubscription.model_validate_json(value) for value in raw.values()]
    return [s for s in found if s.target.key == target.key]


def remove_notify_subscription(redis: Redis, *, target: RouteTarget, cluster: str) -> bool:
    return bool(redis.hdel(keys.NOTIFY, f"{target.key}|{cluster}"))


async def notify_targets(redis: AsyncRedis, *, cluster: str, event: str) -> list[RouteTarget]:
    """Conversations subscribed to `event` of `cluster`, each once."""
    raw = await result(redis.hgetall(keys.NOTIFY))
    targets: dict[str, RouteTarget] = {}
    for value in raw.values():
        subscription = NotifySubscription.model_validate_json(value)
        if subscription.wants(cluster=cluster, event=event):
            targets.setdefault(subscription.target.key, subscription.target)
    return list(targets.values())
