"""Every limit, interval and TTL of the alerts package, each named once with the reason it exists."""

from __future__ import annotations

WEBHOOK_PATH = "/alerts/alertmanager"
"""Where Alertmanager's webhook receiver posts (its `webhook_configs[].url` path)."""

WEBHOOK_VERSION = "4"
"""The only webhook body version Alertmanager has sent since 0.x; anything else is refused."""

WEBHOOK_MAX_BYTES = 1024 * 1024
"""A larger body is refused with 413: a group of several hundred alerts with their annotations stays
well below it, and an unauthorized sender cannot make kobot buffer much."""

GROUPS_KEPT_MAX = 2000
"""Alert groups kept at once (firing and resolved). At the limit the oldest resolved group is forgotten
for a new one; with none resolved, a new group is refused (429) and counted in
`kobot_alerts_dropped_total`. Concurrent webhooks may pass it by a few."""

ALERTS_KEPT_PER_GROUP = 300
"""Alerts of one group kept in its state; the message lists at most ALERT_LINES_MAX anyway. Resolved
alerts go first, then the oldest firing ones, which are counted as "+N more alerts"."""

ANNOTATION_MAX_CHARS = 1024
"""Longest annotation value kept (only the annotations kobot reads are stored at all)."""

LABELS_KEPT_PER_ALERT = 64
"""Labels kept of one alert, and of a group's group and common labels (Prometheus alerts carry a dozen
or two). Past it the labels kobot reads (LABELS_READ_FIRST) stay, then the others in name order; the
rest are counted in `kobot_alerts_dropped_total`. Routes still match on every label posted."""

LABEL_NAME_MAX_CHARS = 128
"""Longest label name kept; a label with a longer name is dropped (Prometheus names are identifiers,
and cut names could collide)."""

LABEL_VALUE_MAX_CHARS = 1024
"""Longest label value kept; a longer one is cut. A silence made from a cut value matches nothing,
never more than the group."""

GROUP_BYTES_KEPT_MAX = 128 * 1024 * 1024
"""Total size of the alert group states kept (their JSON), an eighth of the embedded Valkey's default
`maxmemory` (kobot.defaults.VALKEY_MAXMEMORY_DEFAULT, 1gb): alerts alone never fill the store, where
`noeviction` would then fail the writes of jobs, approvals and audit. 2,000 groups of a 1 MiB body each
would pass 1 GB. Over it the oldest resolved groups are forgotten first; then a new group, or an update
that grows a firing group, is refused (429) and counted in `kobot_alerts_dropped_total`. An update that
resolves or shrinks a group is always stored. Keep a configured `valkey_maxmemory` well above it."""

RUNBOOK_ANNOTATION = "kobot_runbook"
"""The alert annotation naming one of the admin's runbook templates by id, e.g. `cordon-node`."""

ANNOTATIONS_READ = (
    "summary",
    "description",
    "runbook_url",
    "dashboard_url",
    "dashboard_uid",
    RUNBOOK_ANNOTATION,
)
"""The annotations kobot shows or acts on; the others are not stored."""

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
"""A send or update that has not returned after this long counts as failed and is retried, unless its
adapter says one call may take longer (`ChatAdapter.call_budget_seconds`, e.g. Slack's 429 budget):
then that budget plus DELIVERY_TIMEOUT_MARGIN_SECONDS, so a request the platform already took is never
cancelled by kobot and posted again."""

REDIS_SOCKET_TIMEOUT_SECONDS = 5.0
"""A store that does not answer within this long fails the webhook with 503 instead of hanging."""

DELIVERY_STOP_GRACE_SECONDS = 10.0
"""On stop, deliveries in flight get this long to end; one cut short was marked before it posted, so
the next process finds its message instead of posting a second one (where the platform can look)."""

DELIVERY_TIMEOUT_MARGIN_SECONDS = 5.0
"""Added to an adapter's call budget: its own timeouts fire first, so the adapter reports the outcome."""

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

SCOPE_LABELS = ("cluster",)
"""Labels the permission check of a Silence click reads; a silence always matches on them too, so
a right on one cluster never silences another."""

LABELS_READ_FIRST = ("alertname", "severity", "instance", *SCOPE_LABELS, *KEY_LABELS)
"""Labels kept before any other when an alert has more than LABELS_KEPT_PER_ALERT: a message's title,
severity, scope and key fields are made from them."""

CLAIM_MARGIN_SECONDS = 5.0
"""An outbox entry one process took is hidden from the others for its delivery timeout plus this long:
a claim never ends while its delivery may still be running. A dead process's claims end sooner, when
its heartbeat stops (OWNER_DEAD_AFTER_SECONDS)."""

OWNER_HEARTBEAT_SECONDS = 1.0
"""How often a delivering process says it is alive, and looks for the claims of processes that died."""

OWNER_DEAD_AFTER_SECONDS = 5.0
"""A process silent this long is dead (kill -9, crash, lost host): its claimed entries are due again at
once, so a restart delivers them (and any resolve that arrived meanwhile) within seconds."""

POST_LOOKUP_MARGIN_SECONDS = 60.0
"""Looking for a message a failed attempt may have posted, the search starts this long before the
attempt, for clocks that differ between kobot and the platform."""

PLATFORM_ELSEWHERE_RETRY_SECONDS = 2.0
"""When a process takes an outbox entry for a platform it does not run (a terminal `kobot chat` beside
`kobot serve`), the entry is handed back this soon for a process that runs it."""

PLATFORM_ELSEWHERE_ATTEMPTS_MAX = 1800
"""Hand-backs after which an entry no process delivers is dropped with an error (about an hour at the
retry above): its platform has left every process's settings."""
