"""Prometheus metrics kobot exports at GET /metrics.

They are made, with prometheus_client imported and the metrics registered, by the first use of any or by
the first scrape (`exposition`): `kobot serve` answers before either (the library was about 2 % of its
start's instructions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from alerts.metrics import alerts_dropped
from kobot.made_once import MadeOnce

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram


@dataclass(frozen=True)
class Metrics:
    commands: Counter
    """Chat commands by command id and outcome."""
    jobs: Gauge
    """Jobs by state, from the job records (set by each scrape)."""
    queue_depth: Gauge
    """Jobs waiting in the RQ queue (set by each scrape)."""
    event_to_chat_seconds: Histogram
    """Time from a job event to the chat edit that shows it."""
    notifier_delivery_failures: Counter
    """Chat deliveries that failed and were retried."""


def exposition() -> tuple[bytes, str]:
    """What a scrape answers, every metric of kobot's registered, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    metrics()
    alerts_dropped()
    return generate_latest(), CONTENT_TYPE_LATEST


def _make() -> Metrics:
    from prometheus_client import Counter, Gauge, Histogram

    return Metrics(
        commands=Counter(
            "kobot_commands_total", "Chat commands by command id and outcome", ["command", "outcome"]
        ),
        jobs=Gauge("kobot_jobs", "Jobs by state (from the job records)", ["state"]),
        queue_depth=Gauge("kobot_queue_depth", "Jobs waiting in the RQ queue"),
        event_to_chat_seconds=Histogram(
            "kobot_event_to_chat_seconds",
            "Time from a job event to the chat edit that shows it",
            ["platform"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 5, 10, 30),
        ),
        notifier_delivery_failures=Counter(
            "kobot_chat_delivery_failures_total", "Chat deliveries that failed and were retried", ["platform"]
        ),
    )


metrics = MadeOnce(_make)
"""kobot's metrics, made by whichever thread or request asks first."""
