"""Every limit, interval and TTL of the alerts package, each named once with the reason it exists."""

from __future__ import annotations

WEBHOOK_PATH = "/alerts/alertmanager"
"""Where Alertmanager's webhook receiver posts (its `webhook_configs[].url` path)."""

WEBHOOK_VERSION = "4"
"""The only webhook body version Alertmanager has sent since 0.x; anything else is refused."""

WEBHOOK_MAX_BYTES = 8 * 1024 * 1024
"""A larger body is refused with 413: even 5,000 alerts with long annotations stay well below it."""

WEBHOOK_RETRY_AFTER_SECONDS = 5
"""Retry-After sent with a 503 when the store cannot take the group; Alertmanager retries anyway."""

GROUP_TTL_SECONDS = 14 * 24 * 3600
"""A group's state and message refs are kept this long after its last update, so a late resolve
still edits the original message."""

DELIVERY_POLL_SECONDS = 0.25
"""How often the delivery loop looks at the outbox when nothing woke it (a retry came due)."""

DELIVERY_BATCH = 50
"""Outbox entries taken per round; the rest wait for the next round."""

DELIVERY_CONCURRENCY = 8
"""Deliveries in flight at once, so one slow platform does not hold the others."""

DELIVERY_TIMEOUT_SECONDS = 30.0
"""A send or update that has not returned after this long counts as failed and is retried."""

DELIVERY_BACKOFF_SECONDS = 0.5
"""First retry delay of a failed delivery; doubles each attempt up to the cap below."""

DELIVERY_BACKOFF_CAP_SECONDS = 30.0
"""Largest delay between two attempts. Alerts are never dropped: a platform down for hours still
gets the latest state once it answers."""

EDIT_INTERVAL_SECONDS = 1.0
"""At most one edit of a group's message per this many seconds; changes in between coalesce
(the latest state of the group wins)."""

MESSAGE_HEADROOM = 0.7
"""Share of the platform's `max_message_bytes` the plain text may use; the rest is left for the
platform's markup (Block Kit JSON, markdown, card fields)."""

ALERT_LINES_MAX = 15
"""Alerts listed one per line in a message; the rest become "+N more alerts"."""

LINE_MAX_CHARS = 300
"""One alert's line is cut here, so one verbose annotation cannot crowd out the others."""

KEY_LABELS = ("namespace", "team", "service", "job", "node")
"""Labels shown as fields when the whole group shares them."""

BUTTON_TTL_SECONDS = 7 * 24 * 3600
"""A Silence/Ack/Runbook button stops working after this long; a click then gets a clear refusal."""

SILENCE_DURATIONS = {"1h": 3600, "4h": 4 * 3600, "24h": 24 * 3600}
"""The Silence buttons on a firing message."""

ALERTMANAGER_TIMEOUT_SECONDS = 10.0
"""Longest wait for Alertmanager's API when creating a silence."""

DEFAULT_SEVERITY_ORDER = ("info", "warning", "error", "critical")
"""Lowest first; `severity>=warning` matches warning and everything after it. Unknown severities
rank with the lowest."""

CLAIM_SECONDS = 120.0
"""An outbox entry one process took is hidden from the others this long (a delivery takes far less;
a process that died mid-delivery hands its entries back after it)."""
