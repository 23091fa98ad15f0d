"""DingTalk limits and timings, each named once with the reason it exists."""

from __future__ import annotations

PLATFORM = "dingtalk"
"""The platform name on every identity, conversation and message ref this adapter produces."""

MESSAGE_MAX_BYTES = 20_000
"""DingTalk refuses a robot message over this size (errcode 460101); longer messages are split."""

ROBOT_API_MSG_PARAM_MAX_BYTES = 15_000
"""The robot API (groupMessages/send, oToMessages/batchSend) refuses a `msgParam` over this size."""

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
"""Robot errcode: more than the budget in a minute, and then every post while the robot is throttled."""

ROBOT_THROTTLE_PROBE_WINDOWS = 1.0
"""After a 130101 the robot waits this many budget windows before one probing post: DingTalk throttles
an over-budget robot for 10 minutes, and posting on through the throttle only collects refusals."""

ROBOT_SEND_WAIT_SECONDS = 15.0
"""How long `send` to a custom robot waits for its post to be accepted; then the post is withdrawn
from the outbox and the caller gets DeliveryError (with retry_after) to retry from its own durable
state. With one HTTP timeout more (a post already on the wire) this is the adapter's call budget, which
callers that bound a send (the alert delivery) allow for, so a post never lands after they gave up."""

ERRCODE_BUSY = (130101, -1)
"""Robot errcodes that mean "later", not "never": the budget, and the generic system busy."""

ROBOT_WITHDRAW_POLL_SECONDS = 0.05
"""While a post whose sender stopped waiting is on the wire, how often kobot checks if it may withdraw it."""

ACCESS_TOKEN_MARGIN_SECONDS = 300.0
"""An access token is refreshed this long before DingTalk says it expires."""

SESSION_WEBHOOK_MARGIN_MS = 60_000
"""A session webhook this close to its expiry is not used; the Open API takes over."""

INVALID_TOKEN_CODES = frozenset({"InvalidAuthentication"})
"""Open API codes for a missing, wrong or expired access token (HTTP 400, not 401): refresh and retry."""

RATE_LIMIT_CODE_PREFIX = "Forbidden.AccessDenied.QpsLimit"
"""Open API codes for a rate limit (HTTP 403: QpsLimitForApi, QpsLimitForAppkeyAndApi): later, not never."""

CARD_NOT_FOUND_CODES = frozenset({"card.notFound"})
"""Open API codes with which DingTalk refuses to update a card because it holds no card of that
outTrackId: the one answer on which kobot creates a tagged card it never saw created. The pages kobot
was checked against do not document the code; this is the one the DingTalk peer models. Any other
refusal of the update (a 5xx, a 400 about the content) may come from a card DingTalk holds, so a
create then could show it twice: the update fails and the outbox retries it."""

RATE_LIMIT_RETRY_SECONDS = 1.0
"""DingTalk's QPS limits count per second; a limited call is tried again after this long."""

PUBLIC_CARD_TEMPLATE_ID = "1366a1eb-bc54-4859-ac88-517c56a9acb1.schema"
"""The public "Markdown with buttons" card template shipped with dingtalk-stream (card_instance.py,
MarkdownButtonCardInstance): cards edited in place with buttons, with no template to build in a console."""

HTTP_TIMEOUT_SECONDS = 10.0
"""Upper bound for one Open API, webhook or gateway request."""

CALL_BUDGET_SECONDS = ROBOT_SEND_WAIT_SECONDS + HTTP_TIMEOUT_SECONDS
"""The longest one send may take (`ChatAdapter.call_budget_seconds`): a robot send's wait, then one more
request's time for a post already on the wire."""

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
"""A chat message older than this (delivered late after an outage on DingTalk's side) is refused, not run."""

SEEN_TTL_SECONDS = 24 * 3600
"""How long a message id is remembered, so one message reaching two connections or processes runs once."""

CARD_TTL_SECONDS = 30 * 24 * 3600
"""How long kobot remembers a card it sent, so clicks on it can be trusted and routed."""

NICK_TTL_SECONDS = 30 * 24 * 3600
"""How long a staff id's display name is cached (card clicks carry the id only)."""
