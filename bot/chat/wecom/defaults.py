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

RATE_LIMIT_ERRCODES = frozenset({45009, 45011, 45033})
"""Errcodes that mean "too often" (global error list, developer.work.weixin.qq.com/document/path/90455):
45009 API call limit, 45011 API minute quota, 45033 too many concurrent calls. WeCom sends no HTTP 429."""

RATE_LIMIT_PAUSES_SECONDS = (10.0, 20.0, 30.0)
"""A call answered with a rate errcode is tried again after each of these pauses (a minute in all, as
WeCom's quotas are per minute) before the delivery fails; retrying here, not in the caller, keeps the
parts of a split message that were already posted from being posted twice."""

RATE_LIMIT_RETRY_SECONDS = 60.0
"""WeCom gives no Retry-After: after the pauses above the caller tries again this much later."""

USER_MESSAGES_PER_MINUTE = 30
"""message/send: one app may send one person at most this many messages a minute; WeCom drops the rest
silently (errcode 0), so kobot paces itself below it (document/path/90236, 频率限制)."""

USER_MESSAGES_PER_HOUR = 1000
"""message/send: at most this many messages an hour from one app to one person (same page, same drop)."""

GROUP_MESSAGES_PER_MINUTE = 200
"""appchat/send: one member receives at most this many messages a minute from one app in its groups; the
rest is dropped silently (document/path/90248). Paced per group chat."""

ROBOT_MESSAGES_PER_MINUTE = 20
"""webhook/send: a group robot may post at most this many messages a minute (document/path/91770); beyond,
WeCom answers errcode 45009."""

PACING_MARGIN_SECONDS = 2.0
"""Each pacing window is counted this much longer than WeCom's: WeCom counts a message when it arrives,
kobot when it leaves, and the clocks differ; without the margin the first message of a fresh minute
can still land in WeCom's previous one and be dropped."""

PACING_WAIT_MAX_SECONDS = 65.0
"""A send waits at most this long for its recipient's budget; longer (the hourly budget is spent) fails the
delivery with a Retry-After instead of blocking the caller."""

INVALID_RECIPIENTS_ERRCODE = 81013
"""message/send: every userid, party and tag is invalid or outside the app's visible range."""

DISPLAY_NAME_TTL_SECONDS = 24 * 3600
"""A name read from the contacts API (user/get) is reused this long before it is read again."""

DISPLAY_NAME_MISS_TTL_SECONDS = 600
"""A userid the contacts API would not name (no permission, unknown) is shown as the userid, and not asked
about again for this long."""

APPCHAT_CARD_MEMBERS_MAX = 50
"""App group chats cannot carry cards: a message with buttons for one is also sent as a card to at most
this many of its members, one-to-one (one message/send call takes up to 1,000 userids)."""

SEND_BUDGET_SECONDS = PACING_WAIT_MAX_SECONDS + sum(RATE_LIMIT_PAUSES_SECONDS) + 8 * API_TIMEOUT_SECONDS
"""The longest one send or update may take with its pacing wait, rate-limit pauses and API calls."""

ROBOT_BAD_KEY_ERRCODE = 93000
"""Group robot webhook: the key is wrong or the robot was removed from the group."""

MARKDOWN_MAX_BYTES = 2048
"""message/send and appchat/send markdown content limit: "markdown内容，最长不超过2048个字节" in the app
message docs as client libraries quote them (document/path/90236); 4,096 is the group robot's figure.
Longer messages are split."""

ROBOT_MARKDOWN_MAX_BYTES = 4096
"""Group robot webhook/send (document/path/91770) and smart-bot reply markdown limit."""

TEXT_MAX_BYTES = 2048
"""message/send and webhook text content limit."""

MESSAGE_PARTS_MAX = 8
"""An app message too long for one post is split into at most this many (8 × 2,048 bytes); the rest is
summarized."""

ROBOT_MESSAGE_PARTS_MAX = 4
"""The same for group robots (4 × 4,096 bytes), whose budget is 20 posts a minute."""

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
"""A sent card's buttons are kept this long."""

RESPONSE_CODE_TTL_SECONDS = 72 * 3600 - 300
"""A response code is valid for 72 h and once (document/path/94888); kobot drops it a little earlier, so
an update is never tried with a code WeCom has already expired (a new message is posted instead)."""

SMART_BOT_REPLY_TTL_SECONDS = 55 * 60
"""A smart-bot response_url is valid for an hour; it is used only while comfortably inside that."""

REDIS_PREFIX = keys.WECOM_PREFIX
"""Every key the WeCom adapter keeps in Redis starts with this."""

DUPLICATE_CHECK_SECONDS = 4 * 3600
"""`duplicate_check_interval` on tagged app messages: WeCom's maximum (message/send, document/path/90236:
"默认1800s，最大不超过4小时"), so a post retried after a long outage is still recognised as the same."""

TASK_ID_USED_ERRCODE = 42014
"""message/send refuses a template card whose task_id the app has used before (or an empty or too long
one): "taskid has existed or empty or exceed max len" (errcode 42014, global error list). A tagged card
retried after the duplicate check's interval meets it: WeCom took the first attempt."""

TASK_ID_GENERATIONS_MAX = 8
"""How many task ids, one after the other, a tagged card tries when WeCom says the previous one is used;
each later one is met only by a retry more than `DUPLICATE_CHECK_SECONDS` after the last was taken."""

TAG_REF_CHARS = 8
"""Hex characters of a tag's digest shown under a tagged markdown message: two alert groups whose text
happens to match stay two messages under the duplicate check, which compares whole requests."""
