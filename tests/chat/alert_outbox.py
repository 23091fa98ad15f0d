"""What every chat platform's alert-delivery tests share: the alert outbox on real Valkey, the real
Deliverer posting through one adapter, and the group those tests fire ("disk")."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from redis.asyncio import Redis as AsyncRedis

from alerts.delivery import Deliverer
from alerts.models import AlertmanagerWebhook
from alerts.store import AlertStore
from kobot.chat import ChatAdapter
from kobot.settings_alerts import AlertsSettings
from tests.support.alertmanager import webhook_body

BUTTON_SECRET = b"k" * 32
"""The key alert buttons are signed with in these tests."""


@asynccontextmanager
async def outbox_redis(redis_url: str) -> AsyncIterator[AsyncRedis]:
    """The connection the alert outbox uses (text replies), closed after."""
    redis = AsyncRedis.from_url(redis_url, decode_responses=True)
    try:
        yield redis
    finally:
        await redis.aclose()


def deliverer(
    store: AlertStore,
    *,
    platform: str,
    adapter: ChatAdapter,
    settings: AlertsSettings,
    clock: Callable[[], float] = time.time,
) -> Deliverer:
    """The outbox's real Deliverer with `adapter` as the one adapter of `platform`."""
    return Deliverer(
        store=store, adapters={platform: adapter}, secret=BUTTON_SECRET, settings=settings, clock=clock
    )


def disk_group(*fingerprints: str, status: str = "firing", description: str = "") -> AlertmanagerWebhook:
    """The "disk" group with `fingerprints`; `description` is kept and part of the group's digest, but
    not shown while a summary is: a change no one reads."""
    body = webhook_body(fingerprints=fingerprints, group="disk", status=status)
    for alert in body["alerts"]:
        alert["annotations"]["description"] = description
    return AlertmanagerWebhook.model_validate(body)
