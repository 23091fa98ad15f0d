"""Prometheus metrics kobot exports at GET /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

COMMANDS = Counter("kobot_commands_total", "Chat commands by command id and outcome", ["command", "outcome"])
JOBS = Gauge("kobot_jobs", "Jobs by state (from the job records)", ["state"])
QUEUE_DEPTH = Gauge("kobot_queue_depth", "Jobs waiting in the RQ queue")
EVENT_TO_CHAT_SECONDS = Histogram(
    "kobot_event_to_chat_seconds",
    "Time from a job event to the chat edit that shows it",
    ["platform"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 5, 10, 30),
)
NOTIFIER_DELIVERY_FAILURES = Counter(
    "kobot_chat_delivery_failures_total", "Chat deliveries that failed and were retried", ["platform"]
)
