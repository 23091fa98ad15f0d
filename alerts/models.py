"""Typed shapes: Alertmanager's version-4 webhook body, and the alert group state kobot keeps.

The webhook models validate exactly what Alertmanager sends; the stored state is kobot's own view of
one group (its alerts by fingerprint, the targets it was shown in, who acked and silenced it).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import Enum
from typing import Literal

from pydantic import ConfigDict, Field

from alerts import defaults
from kobot.clock import utcnow
from kobot.deferred_models import DeferredModel
from kobot.messages import OutgoingMessage
from kobot.settings_alerts import RouteTarget

ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
"""What Alertmanager sends as `endsAt` of an alert with no known end."""


class AlertStatus(str, Enum):
    FIRING = "firing"
    RESOLVED = "resolved"


class WebhookAlert(DeferredModel):
    """One alert as Alertmanager posts it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    status: AlertStatus
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime = Field(default=ZERO_TIME, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL", max_length=8192)
    fingerprint: str = Field(default="", max_length=128)

    def key(self) -> str:
        """Alertmanager's fingerprint, or a stable hash of the labels when a sender left it out."""
        if self.fingerprint:
            return self.fingerprint
        return hashlib.sha256(json.dumps(self.labels, sort_keys=True).encode()).hexdigest()[:16]


class AlertmanagerWebhook(DeferredModel):
    """The body of Alertmanager's webhook receiver, version 4."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    version: Literal["4"]
    group_key: str = Field(alias="groupKey", min_length=1, max_length=4096)
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts", ge=0)
    status: AlertStatus
    receiver: str = Field(min_length=1, max_length=1024)
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL", max_length=4096)
    alerts: list[WebhookAlert] = Field(min_length=1)

    def group_id(self) -> str:
        """A short, key-safe id of the group (the group key can be long and hold any character)."""
        return group_id_of(receiver=self.receiver, group_key=self.group_key)


def group_id_of(*, receiver: str, group_key: str) -> str:
    return hashlib.sha256(f"{receiver}\0{group_key}".encode()).hexdigest()[:20]


class StoredAlert(DeferredModel):
    """One alert of a group, as last seen."""

    fingerprint: str
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime
    ends_at: datetime = ZERO_TIME
    generator_url: str = ""


class SilenceRecord(DeferredModel):
    """A silence created from a button, shown on the message."""

    silence_id: str
    created_by: str
    ends_at: datetime


class AlertGroupState(DeferredModel):
    """kobot's view of one alert group: the latest alerts, where it is shown, ack and silences.

    `episode` counts firing periods: a group that fires again after it resolved gets new messages
    rather than an edit of an old, scrolled-away one.
    """

    group_id: str
    group_key: str
    receiver: str
    status: AlertStatus
    group_labels: dict[str, str] = Field(default_factory=dict)
    common_labels: dict[str, str] = Field(default_factory=dict)
    common_annotations: dict[str, str] = Field(default_factory=dict)
    external_url: str = ""
    alerts: list[StoredAlert] = Field(default_factory=list)
    truncated_alerts: int = 0
    digest: str = ""
    episode: int = 1
    first_seen: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    targets: list[RouteTarget] = Field(default_factory=list)
    acked_by: str | None = None
    acked_at: datetime | None = None
    silences: list[SilenceRecord] = Field(default_factory=list)

    def firing(self) -> list[StoredAlert]:
        return [alert for alert in self.alerts if alert.status is AlertStatus.FIRING]

    def started_at(self) -> datetime:
        return min((alert.starts_at for alert in self.alerts), default=self.first_seen)

    def resolved_at(self) -> datetime:
        ends = [alert.ends_at for alert in self.alerts if alert.ends_at > ZERO_TIME]
        return max(ends, default=self.updated_at)

    def label(self, name: str) -> str | None:
        """A label the group shares, from the group or common labels."""
        return self.group_labels.get(name) or self.common_labels.get(name)

    def silence_labels(self) -> dict[str, str]:
        """The labels a silence of this group matches on: what defines the group (else what it shares),
        plus every scope label the permission check read, so the silence reaches no further than the
        right that allowed it (a `dev-*` admin's silence never matches a prod alert)."""
        labels = dict(self.group_labels) or dict(self.common_labels)
        for name in defaults.SCOPE_LABELS:
            value = self.label(name)
            if value:
                labels[name] = value
        return labels


def webhook_digest(body: AlertmanagerWebhook) -> str:
    """What makes two deliveries of a group the same: a repeat or a retried POST has the same digest.

    `endsAt` of a firing alert is left out: Alertmanager moves it forward on every resend.
    """
    parts = [
        body.status.value,
        str(body.truncated_alerts),
        json.dumps(body.common_annotations, sort_keys=True),
    ]
    for alert in sorted(body.alerts, key=WebhookAlert.key):
        ends = alert.ends_at.isoformat() if alert.status is AlertStatus.RESOLVED else ""
        parts.append(
            "|".join(
                (
                    alert.key(),
                    alert.status.value,
                    alert.starts_at.isoformat(),
                    ends,
                    json.dumps(alert.annotations, sort_keys=True),
                )
            )
        )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class Notice(DeferredModel):
    """A cluster event message waiting in the outbox for its subscribers."""

    notice_id: str
    cluster: str
    event: str
    message: OutgoingMessage
    targets: list[RouteTarget]
    created_at: datetime = Field(default_factory=utcnow)


def clip(text: str, limit: int = defaults.LINE_MAX_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
