"""Golden files: the exact requests DingTalk receives for every sample message, captured at the peer.

For each message in `tests/chat/samples.ALL`, three views of what went over the socket:
with a team card template, without one (the SDK's public card, or markdown through the robot API for
messages without buttons that are not edited), and through a custom robot.
Regenerate with KOBOT_UPDATE_GOLDEN=1 after an intended rendering change, and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from bot.chat.dingtalk.adapter import DingTalkAdapter
from kobot.conversations import Conversation
from kobot.messages import OutgoingMessage
from tests.chat import samples
from tests.peers.dingtalk import DingTalkPeer, Recorded
from tests.support.dingtalk import settings_for
from tests.support.waiting import wait_until

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE = os.environ.get("KOBOT_UPDATE_GOLDEN") == "1"
GROUP = Conversation(platform="dingtalk", conversation_id="cidGroupProd01")
OPS = Conversation(platform="dingtalk", conversation_id="robot:ops")
OPENAPI_PATHS = ("/v1.0/card/instances/createAndDeliver", "/v1.0/robot/groupMessages/send")


def _captured(record: Recorded) -> dict[str, Any]:
    body = dict(record.body)
    if "outTrackId" in body:
        body["outTrackId"] = "<outTrackId>"
    return {"method": record.method, "path": record.path, "body": body}


async def _openapi_request(
    peer: DingTalkPeer, adapter: DingTalkAdapter, message: OutgoingMessage
) -> dict[str, Any]:
    before = sum(len(peer.requests_to(path)) for path in OPENAPI_PATHS)
    await adapter.send(GROUP, message)
    records = sorted((r for path in OPENAPI_PATHS for r in peer.requests_to(path)), key=lambda r: r.at)
    assert len(records) == before + 1
    return _captured(records[-1])


@pytest.mark.parametrize("name", sorted(samples.ALL))
async def test_peer_golden_payloads(name: str, peer: DingTalkPeer, redis: Redis) -> None:
    message = samples.ALL[name]
    with_card = DingTalkAdapter(settings=settings_for(peer), redis=redis)
    plain = DingTalkAdapter(settings=settings_for(peer, template=False), redis=redis)
    try:
        captured = {
            "with_card_template": await _openapi_request(peer, with_card, message),
            "without_card_template": await _openapi_request(peer, plain, message),
        }
        await with_card.send(OPS, message)
        token = next(iter(peer.robots))
        assert await wait_until(lambda: len(peer.robot_posts[token]) == 1)
        captured["custom_robot"] = peer.robot_posts[token][0]
    finally:
        await with_card.stop()
        await plain.stop()

    path = GOLDEN_DIR / f"{name}.json"
    rendered = json.dumps(captured, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    if UPDATE:
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"no golden file {path.name}; run with KOBOT_UPDATE_GOLDEN=1 and review it"
    assert json.loads(path.read_text(encoding="utf-8")) == captured


def test_every_golden_file_has_a_sample() -> None:
    assert {p.stem for p in GOLDEN_DIR.glob("*.json")} == set(samples.ALL)
