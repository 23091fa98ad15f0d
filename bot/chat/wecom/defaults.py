"""WeCom limits and timings, each named once with the reason it exists."""

from __future__ import annotations

from kobot import keys

PLATFORM = "wecom"
"""The platform name in identities, conversations and message refs."""

CALLBACK_WINDOW_SECONDS = 300
"""A callback whose timestamp is further than this from now is refused as stale (wechatpy checks none)."""

NONCE_TTL_SECONDS = 2 * CALLBACK_WINDOW_SECONDS
"""A seen nonce is remembered this long: longer than the window, so a replay inside it is always caught."""

MESSAGE_DEDUPE_TTL_SECONDS = 3600
"""WeCom retries an unanswered callback three times; the same MsgId inside this time is handled once."""

API_TIMEOUT_SECONDS = 10.0
"""One WeCom API call may take this long before the delivery counts as failed (the caller retries)."""

TOKEN_REFRESH_ERRCODES = frozenset({40001, 40014, 42001})
"""Errcodes that mean the access token is bad or expired: fetch a new one and retry the call once."""

RATE_LIMIT_ERRCODES = frozenset({45009, 45033, 45047})
"""Errcodes that mean "too often": the caller should retry after RATE_LIMIT_RETRY_SECONDS."""

RATE_LIMIT_RETRY_SECONDS = 60.0
"""WeCom gives no Retry-After; its frequency limits are per minute."""

ROBOT_BAD_KEY_ERRCODE = 93000
"""Group robot webhook: the key is wrong or the robot was removed from the group."""

MARKDOWN_MAX_BYTES = 4096
"""message/send markdown content limit (errcode 40058 beyond); longer messages are split."""

TEXT_MAX_BYTES = 2048
"""message/send and webhook text content limit."""

MESSAGE_PARTS_MAX = 4
"""A message too long for one post is split into at most this many; the rest is summarized."""

BUTTON_KEY_MAX_BYTES = 1024
"""template_card button key limit; a longer button value is kept server-side under a short key."""

BUTTONS_MAX = 6
"""template_card button_interaction holds at most six buttons."""

CARD_FIELDS_MAX = 6
"""template_card horizontal_content_list holds at most six rows; more go into the sub title."""

CARD_TITLE_MAX_CHARS = 36
"""template_card main_title.title is cut beyond this."""

CARD_SUBTITLE_MAX_CHARS = 112
"""template_card sub_title_text is cut beyond this."""


CARD_STATE_TTL_SECONDS = 7 * 24 * 3600
"""A sent card's buttons and response codes are kept this long (a response code is valid for 72 h)."""

SMART_BOT_REPLY_TTL_SECONDS = 55 * 60
"""A smart-bot response_url is valid for an hour; it is used only while comfortably inside that."""

REDIS_PREFIX = keys.WECOM_PREFIX
"""Every key the WeCom adapter keeps in Redis starts with this."""
