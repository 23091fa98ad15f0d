"""Slack's limits and kobot's timeouts for Slack, each named once with the reason it exists."""

from __future__ import annotations

from kobot.defaults import REDIS_SOCKET_TIMEOUT_SECONDS

PLATFORM = "slack"
"""The platform name on every identity, conversation and message ref this adapter produces."""

EVENTS_PATH = "/slack/events"
"""Where Slack posts events, slash commands and button clicks (the Request URL in the app config)."""

SIGNATURE_MAX_AGE_SECONDS = 300
"""Slack's own window: a request whose timestamp is further from now than this is refused."""

REPLAY_TTL_SECONDS = 2 * SIGNATURE_MAX_AGE_SECONDS + 60
"""A seen (timestamp, signature) pair is remembered past both ends of the window, so no repeat can pass."""

REPLAY_MEMORY_MAX = 300_000
"""Verified pairs one process remembers for the ack-time replay check (about 400 requests a second for
the whole REPLAY_TTL_SECONDS, some 40 MB at most); older ones are still refused through Redis."""

TIMESTAMP_MAX_DIGITS = 12
"""X-Slack-Request-Timestamp is epoch seconds (10 digits until 2286); a longer value is not Slack's."""

EVENT_ID_TTL_SECONDS = 3600
"""Slack redelivers an event (new signature, same event_id) for up to about an hour after a failed ack."""

REQUEST_BODY_MAX_BYTES = 1_000_000
"""Larger inbound bodies are refused before any parsing: no Slack callback is that big."""

USER_CACHE_TTL_SECONDS = 3600
"""Display names from users.info are cached this long; renames show up within the hour."""

USER_MEMORY_SECONDS = 60.0
"""A process reuses a display name it read (from Redis or users.info) this long before reading it again,
sparing a store round trip per event; a rename still shows within USER_CACHE_TTL_SECONDS plus this."""

USER_MEMORY_MAX = 10_000
"""Display names one process keeps in memory; past this the oldest are read from Redis again."""

STORE_TIMEOUT_SECONDS = REDIS_SOCKET_TIMEOUT_SECONDS
"""The adapter's own store calls (the cross-process replay record, the event and click de-duplication, the
user cache) get this long, as serve's other store clients do (the alert store's get less). Unbounded, a
store that takes connections and stops answering (stopped by SIGSTOP, cut off by the network) held every
worker for ever: acked events were then shed without a word instead of being answered that kobot cannot
act now."""

USER_LOOKUP_TIMEOUT_SECONDS = 5.0
"""users.info gets this long; past it the user id stands in for the name rather than holding the event."""

API_TIMEOUT_SECONDS = 15
"""One Web API call's HTTP timeout; slow answers beyond it count as a failed delivery."""

CONNECTION_RETRIES = 3
"""Retries of a Web API call after a dropped connection."""

SERVER_ERROR_RETRIES = 2
"""Retries of a Web API call answered 500/503."""

INBOUND_WORKERS = 48
"""Acked requests handled at once. Enough to keep Slack's Web API latency (about 50 ms a call, a few calls
an event) from capping throughput near 400 events a second, few enough that the acks waiting on the same
event loop never queue behind hundreds of half-done events."""

INBOUND_WORKERS_MIN = 4
"""Workers that keep running however late the event loop is, so work still moves while acks come first."""

LOOP_LAG_PROBE_SECONDS = 0.02
"""How often the adapter asks its event loop for the time: a sleep of this long answered late is lag."""

LOOP_LAG_HIGH_SECONDS = 0.02
"""Lag past this halves the running workers: an ack waiting this long per step would miss 100 ms."""

LOOP_LAG_LOW_SECONDS = 0.005
"""Lag under this lets one more worker run again."""

INBOUND_QUEUE_MAX = 4000
"""Acked requests waiting for a worker (ten seconds at 400 a second). Beyond it new work is dropped and
logged: an answer that late is worth less than acks that stay on time, and Slack does not retry an
acked request."""

HTTP_CONNECTIONS_MAX = 64
"""Kept-alive connections to Slack's Web API one adapter holds (its calls share them instead of paying a
TCP and TLS handshake per call)."""

STOP_GRACE_SECONDS = 5.0
"""On stop, events already acked get this long to reach the dispatcher before they are abandoned."""

SERVER_ERROR_BACKOFF_SECONDS = 0.25
"""First pause before retrying a 500/503 (doubling); longer outages go back to the caller as DeliveryError."""

SOCKET_PING_SECONDS = 10.0
"""Socket Mode ping interval: a dead link is noticed and reopened within about this time."""

MAX_BLOCKS = 50
"""Slack refuses a message with more blocks than this."""

HEADER_MAX_CHARS = 150
"""A header block's plain_text limit."""

SECTION_MAX_CHARS = 3000
"""A section block's text limit."""

FIELD_MAX_CHARS = 2000
"""A section field's text limit."""

FIELDS_PER_SECTION = 10
"""A section holds at most this many fields; more go into another section."""

BUTTONS_PER_ACTIONS = 25
"""An actions block holds at most this many elements."""

BUTTON_LABEL_MAX_CHARS = 75
"""A button's plain_text label limit."""

BUTTON_VALUE_MAX_CHARS = 2000
"""A button's value limit; a longer value cannot come back verbatim, so it is refused."""

CONTEXT_MAX_CHARS = 2000
"""A context element's text limit."""

TEXT_MAX_CHARS = 40_000
"""chat.postMessage refuses `text` beyond this (msg_too_long); kobot cuts it first, visibly."""

BLOCKS_TEXT_MAX_CHARS = 11_000
"""Text kobot puts across one message's blocks. Slack refuses more than about 12,000 characters in all
(msg_blocks_too_long, counted with some overhead per block: slackapi/bolt-js#2509, #2867)."""

BLOCKS_TEXT_RETRY_CHARS = 5_500
"""After a msg_blocks_too_long anyway, the message is rendered again within this and sent once more."""

BLOCK_TEXT_KEPT_CHARS = 200
"""Shortening blocks to fit never cuts one text below this: a field or a status stays readable."""

TAG_LOOKUP_PAGE_SIZE = 100
"""Messages per conversations.history page when looking for a tagged post (Slack suggests at most 200)."""

TAG_LOOKUP_PAGES = 3
"""Pages read looking for a tagged post; the search starts shortly before the post began, so few suffice."""

ELSEWHERE_SAID_MAX = 100
"""Other workspaces whose dropped requests are each said once in the log; past that, none are."""
