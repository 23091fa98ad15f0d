"""DingTalk limits and timings, each named once with the reason it exists."""

from __future__ import annotations

PLATFORM = "dingtalk"
"""The platform name on every identity, conversation and message ref this adapter produces."""

MESSAGE_MAX_BYTES = 20_000
"""DingTalk refuses a robot message over this size (errcode 460101); longer messages are split."""

MESSAGE_MAX_PARTS = 4
"""A message needing more parts than this is cut and says so: a wall of robot posts helps no one."""

ROBOT_OUTBOX_MAX = 2_000
"""Messages one robot outbox holds; beyond it the caller gets DeliveryError and retries later."""

ROBOT_RETRY_BASE_SECONDS = 0.5
"""First pause after a failed robot post (network, 5xx); doubles up to the cap."""

ROBOT_RETRY_CAP_SECONDS = 30.0
"""Longest pause between two attempts of the same robot post."""

ROBOT_PERMANENT_FAILURE_ATTEMPTS = 8
"""A post DingTalk refuses as invalid (not as busy) is tried this often, then dropped with an error log."""

ROBOT_STOP_FLUSH_SECONDS = 5.0
"""How long `stop()` waits for queued robot posts before logging what is left."""

ERRCODE_TOO_FAST = 130101
"""Robot errcode: more than the budget in a minute."""

ERRCODE_BUSY = (130101, -1)
"""Robot errcodes that mean "later", not "never": the budget, and the generic system busy."""

ACCESS_TOKEN_MARGIN_SECONDS = 300.0
"""An access token is refreshed this long before DingTalk says it expires."""

SESSION_WEBHOOK_MARGIN_MS = 60_000
"""A session webhook this close to its expiry is not used; the Open API takes over."""

HTTP_TIMEOUT_SECONDS = 10.0
"""Upper bound for one Open API, webhook or gateway request."""

STREAM_OPEN_TIMEOUT_SECONDS = 10.0
"""Upper bound for the websocket handshake with the stream gateway."""

STREAM_PING_INTERVAL_SECONDS = 20.0
"""Websocket ping interval: a dead gateway connection is noticed within about twice this."""

STREAM_BACKOFF_BASE_SECONDS = 0.2
"""First pause before reconnecting to the stream gateway; doubles up to the cap."""

STREAM_BACKOFF_CAP_SECONDS = 30.0
"""Longest pause between two reconnect attempts."""

STREAM_START_TIMEOUT_SECONDS = 10.0
"""`start()` waits this long for the first gateway connection before returning anyway (it keeps trying)."""

STREAM_STOP_TIMEOUT_SECONDS = 5.0
"""How long `stop()` waits for the stream thread to end."""

MESSAGE_MAX_AGE_SECONDS = 600.0
"""A chat message older than this (a re-delivery after a long outage) is refused, not run."""

SEEN_TTL_SECONDS = 24 * 3600
"""How long a delivered frame id is remembered, so a re-sent frame is not handled twice."""

CARD_TTL_SECONDS = 30 * 24 * 3600
"""How long kobot remembers a card it sent, so clicks on it can be trusted and routed."""

NICK_TTL_SECONDS = 30 * 24 * 3600
"""How long a staff id's display name is cached (card clicks carry the id only)."""
