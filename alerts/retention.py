"""What of a webhook body is kept: the alerts, labels and annotations kobot reads, clipped, merged into
the group's state. Everything else a sender posts costs no Redis memory; what is let go is counted in
`kobot_alerts_dropped_total`."""

from __future__ import annotations

import logging
from datetime import datetime

from alerts import defaults
from alerts.metrics import DropReason, count_dropped
from alerts.models import AlertGroupState, AlertmanagerWebhook, AlertStatus, StoredAlert, WebhookAlert, clip
from kobot.settings_alerts import RouteTarget

log = logging.getLogger(__name__)


def kept_annotations(annotations: dict[str, str]) -> dict[str, str]:
    """Only what kobot reads, each value clipped: nothing else of an annotation is worth Redis memory."""
    return {
        name: clip(value, defaults.ANNOTATION_MAX_CHARS)
        for name, value in annotations.items()
        if name in defaults.ANNOTATIONS_READ
    }


def kept_labels(labels: dict[str, str]) -> dict[str, str]:
    """At most LABELS_KEPT_PER_ALERT labels, the ones kobot reads first, values clipped: a body of
    thousands of long labels would otherwise be kept whole. A name over LABEL_NAME_MAX_CHARS is no
    real label and is dropped (cut, such names would collide)."""
    first = {name: rank for rank, name in enumerate(defaults.LABELS_READ_FIRST)}
    names = sorted(
        (name for name in labels if len(name) <= defaults.LABEL_NAME_MAX_CHARS),
        key=lambda name: (first.get(name, len(first)), name),
    )[: defaults.LABELS_KEPT_PER_ALERT]
    if len(names) < len(labels):
        count_dropped(DropReason.LABELS_OVER_ALERT_LIMIT, len(labels) - len(names))
    return {name: clip(labels[name], defaults.LABEL_VALUE_MAX_CHARS) for name in names}


def kept_alerts(body: AlertmanagerWebhook) -> tuple[list[WebhookAlert], int]:
    """At most ALERTS_KEPT_PER_GROUP alerts: firing before resolved, newest first; and how many firing
    alerts were left out (they count as "+N more alerts")."""
    if len(body.alerts) <= defaults.ALERTS_KEPT_PER_GROUP:
        return list(body.alerts), 0
    ranked = sorted(
        body.alerts, key=lambda a: (a.status is AlertStatus.RESOLVED, -a.starts_at.timestamp(), a.key())
    )
    kept, left = ranked[: defaults.ALERTS_KEPT_PER_GROUP], ranked[defaults.ALERTS_KEPT_PER_GROUP :]
    count_dropped(DropReason.ALERTS_OVER_GROUP_LIMIT, len(left))
    log.warning(
        "alert group %s: %d alerts posted, %d kept (ALERTS_KEPT_PER_GROUP)",
        body.group_id(),
        len(body.alerts),
        len(kept),
    )
    return kept, sum(1 for alert in left if alert.status is AlertStatus.FIRING)


def merge_state(
    previous: AlertGroupState | None,
    body: AlertmanagerWebhook,
    *,
    digest: str,
    targets: list[RouteTarget],
    now: datetime,
) -> tuple[AlertGroupState, bool]:
    """The new state, and whether it starts a new episode (fresh messages instead of edits)."""
    new_episode = previous is None or (
        previous.status is AlertStatus.RESOLVED and body.status is AlertStatus.FIRING
    )
    posted, left_out = kept_alerts(body)
    alerts = [
        StoredAlert(
            fingerprint=alert.key(),
            status=alert.status,
            labels=kept_labels(alert.labels),
            annotations=kept_annotations(alert.annotations),
            starts_at=alert.starts_at,
            ends_at=alert.ends_at,
            generator_url=alert.generator_url,
        )
        for alert in posted
    ]
    alerts.sort(key=lambda a: a.fingerprint)
    base = {
        "status": body.status,
        "group_labels": kept_labels(body.group_labels),
        "common_labels": kept_labels(body.common_labels),
        "common_annotations": kept_annotations(body.common_annotations),
        "external_url": body.external_url,
        "alerts": alerts,
        "truncated_alerts": body.truncated_alerts + left_out,
        "digest": digest,
        "updated_at": now,
    }
    if new_episode:
        episode = 1 if previous is None else previous.episode + 1
        state = AlertGroupState(
            group_id=body.group_id(),
            group_key=body.group_key,
            receiver=body.receiver,
            episode=episode,
            first_seen=now,
            targets=targets,
            **base,
        )
        return state, previous is not None
    assert previous is not None
    merged = {t.key: t for t in previous.targets}
    if body.status is AlertStatus.FIRING:
        for target in targets:
            merged.setdefault(target.key, target)
    return previous.model_copy(update={**base, "targets": list(merged.values())}), False
