"""DingTalk's stream frames and the command parser under mutated input: refusals, never crashes.

A DingTalk frame arrives over the authenticated stream (no per-frame signature); what kobot does with
it is `inbound.chat_message` / `inbound.card_click`, whose only way to say no is `InboundRefused` (any
other exception acks the frame as a system error and the gateway sends it again, forever). The parser's
only way to say no is `CommandError`. Both must also leave no text UTF-8 cannot encode in what they
return, since that text goes on to keys, store writes and logs.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

from bot.chat.dingtalk.inbound import InboundRefused, card_click, chat_message
from commands.parser import parse
from kobot.errors import CommandError
from tests.fuzz.mutations import NASTY_STRINGS, mutate_bytes, mutate_document

FRAMES = 2_000
"""Mutated frames per frame kind."""

PARSER_LINES = 20_000
"""Mutated command lines in `make test` (seconds on a quiet core); tests/bench/bench_fuzz.py runs 100,000."""

SEED = 20_261_129

COMMAND_LINES = (
    "list clusters",
    "create cluster prod masters=3 workers=2 hosts=a.example,b.example version=1.31.4",
    "scale workers 5 on prod",
    "扩容 prod 工作节点 5",
    'delete cluster staging --break-glass "disk full"',
    "audit since=2d cluster=prod-*",
    "job status #42",
    "help create",
    "upgrade prod to 1.30.14",
    "backup etcd prod",
)
"""Lines people type; the mutations start from these."""


def chat_frame() -> dict[str, Any]:
    """A chat frame's data as DingTalk's stream sends it (dingtalk_stream's ChatbotMessage fields)."""
    now = int(time.time() * 1000)
    return {
        "conversationId": "cidGroupProd01",
        "atUsers": [{"dingtalkId": "$:LWCP_v1:$bot"}],
        "chatbotCorpId": "dingcorp01",
        "chatbotUserId": "$:LWCP_v1:$bot",
        "msgId": "msg0123",
        "senderNick": "Alice",
        "isAdmin": False,
        "senderStaffId": "staff-alice",
        "sessionWebhookExpiredTime": now + 3_600_000,
        "createAt": now,
        "senderCorpId": "dingcorp01",
        "conversationType": "2",
        "senderId": "$:LWCP_v1:$staff-alice",
        "sessionWebhook": "http://127.0.0.1:9/robot/sendBySession?session=s",
        "robotCode": "dingbot",
        "msgtype": "text",
        "isInAtList": True,
        "conversationTitle": "prod-ops",
        "text": {"content": " list clusters"},
    }


def card_frame() -> dict[str, Any]:
    params = {"action_id": "approval.approve", "value": "ap1.approve.sig"}
    return {
        "extension": "{}",
        "corpId": "dingcorp01",
        "userId": "staff-bob",
        "content": json.dumps({"cardPrivateData": {"actionIds": ["kobot_button"], "params": params}}),
        "outTrackId": "track01",
        "type": "actionCallback",
        "spaceType": "IM_GROUP",
    }


def _mutated(rng: random.Random, document: dict[str, Any]) -> Any:
    for _ in range(rng.randrange(1, 4)):
        document = mutate_document(rng, document)
    if rng.random() < 0.2:
        raw = mutate_bytes(rng, json.dumps(document).encode())
        try:
            return json.loads(raw)
        except ValueError:
            return {"content": raw.decode("utf-8", "replace")}
    return document


def test_mutated_dingtalk_chat_frames_are_refused_never_raised() -> None:
    rng = random.Random(SEED)
    accepted = refused = 0
    for _ in range(FRAMES):
        data = _mutated(rng, chat_frame())
        if not isinstance(data, dict):
            continue  # the SDK hands kobot a dict or nothing (stream.py keeps only dicts)
        try:
            message = chat_message(data, now_ms=int(time.time() * 1000))
        except InboundRefused:
            refused += 1
            continue
        accepted += 1
        (message.text + message.identity.key + message.conversation.key).encode()
    assert accepted > FRAMES // 10 and refused > FRAMES // 10, (accepted, refused)


def test_mutated_dingtalk_card_callbacks_are_refused_never_raised() -> None:
    rng = random.Random(SEED + 1)
    accepted = refused = 0
    for _ in range(FRAMES):
        data = _mutated(rng, card_frame())
        if not isinstance(data, dict):
            continue
        try:
            click = card_click(data)
        except InboundRefused:
            refused += 1
            continue
        accepted += 1
        (click.out_track_id + click.user_id + click.action_id + click.value).encode()
    assert accepted > FRAMES // 10 and refused > FRAMES // 10, (accepted, refused)


def mutated_lines(rng: random.Random, count: int) -> list[str]:
    lines = []
    for _ in range(count):
        line = rng.choice(COMMAND_LINES)
        choice = rng.randrange(4)
        if choice == 0:
            line = "".join(ch if rng.random() > 0.1 else chr(rng.randrange(0x110000)) for ch in line)
        elif choice == 1:
            at = rng.randrange(len(line) + 1)
            line = line[:at] + rng.choice(NASTY_STRINGS) + line[at:]
        elif choice == 2:
            words = line.split()
            rng.shuffle(words)
            line = " ".join(words)
        else:
            line = mutate_bytes(rng, line.encode()).decode("utf-8", "surrogateescape")
        lines.append(line)
    return lines


def check_parser_lines(lines: list[str]) -> tuple[int, int]:
    """Parse every line; (understood, refused). Anything but CommandError fails the caller."""
    understood = refused = 0
    for line in lines:
        try:
            parsed = parse(line)
        except CommandError as exc:
            refused += 1
            exc.user_message.encode()
            continue
        understood += 1
        json.dumps(parsed.args, ensure_ascii=False).encode()
    return understood, refused


def test_mutated_command_lines_parse_or_are_refused() -> None:
    understood, refused = check_parser_lines(mutated_lines(random.Random(SEED + 2), PARSER_LINES))
    assert understood > 0 and refused > 0
