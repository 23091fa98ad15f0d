"""Prometheus metrics of the alerts package, exported with kobot's others at GET /metrics.

Made by their first use or the first scrape, as kobot's others are (`bot.metrics`).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from kobot.made_once import MadeOnce

if TYPE_CHECKING:
    from prometheus_client import Counter


class DropReason(str, Enum):
    """Why kobot let go of alert data it was sent (the limits are in `alerts.defaults`)."""

    GROUP_REFUSED = "group_refused"
    """A new group came while GROUPS_KEPT_MAX groups were firing."""
    RESOLVED_GROUP_EVICTED = "resolved_group_evicted"
    """A resolved group was forgotten to make room for a new one."""
    ALERTS_OVER_GROUP_LIMIT = "alerts_over_group_limit"
    """Alerts beyond ALERTS_KEPT_PER_GROUP in one webhook body."""
    GROUP_BYTES_REFUSED = "group_bytes_refused"
    """A new group, or an update growing a firing one, would pass GROUP_BYTES_KEPT_MAX."""
    LABELS_OVER_ALERT_LIMIT = "labels_over_alert_limit"
    """Labels beyond LABELS_KEPT_PER_ALERT, or named longer than LABEL_NAME_MAX_CHARS, of one alert
    (or of a group's group or common labels)."""


def count_dropped(reason: DropReason, amount: int = 1) -> None:
    """Count `amount` alert groups or alerts let go of for `reason`."""
    alerts_dropped().labels(reason=reason.value).inc(amount)


def _make_dropped() -> Counter:
    from prometheus_client import Counter

    return Counter(
        "kobot_alerts_dropped_total", "Alert groups or alerts kobot did not keep, by reason", ["reason"]
    )


alerts_dropped = MadeOnce(_make_dropped)
"""The counter of alert data kobot did not keep, by reason, made by whichever thread or request asks
first."""
