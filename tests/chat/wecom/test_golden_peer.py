"""The exact payload WeCom receives for every sample message, captured at the peer (over the socket).

Regenerate with KOBOT_UPDATE_GOLDEN=1 after an intended change; otherwise a difference fails.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from bot.chat.wecom.adapter import WeComAdapter
from kobot.conversations import Conversation
from tests.chat.samples import ALL
from tests.peers.wecom import WeComPeer

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("KOBOT_UPDATE_GOLDEN") == "1"
"""Read at import: the suite clears KOBOT_ variables before each test."""


def normalized(payload: dict[str, Any], *, agent_id: int) -> dict[str, Any]:
    """Random parts (task ids, the peer's agent id) replaced by stable names."""
    text = json.dumps(payload, ensure_ascii=False)
    card = payload.get("template_card")
    if isinstance(card, dict):
        text = text.replace(card["task_id"], "<task_id>")
    data: dict[str, Any] = json.loads(text)
    if data.get("agentid") == agent_id:
        data["agentid"] = "<agent_id>"
    return data


@pytest.mark.parametrize("name", sorted(ALL))
async def test_peer_golden_payload(name: str, adapter: WeComAdapter, wecom_peer: WeComPeer) -> None:
    await adapter.send(Conversation(platform="wecom", conversation_id="user:alice"), ALL[name])
    calls = wecom_peer.requests_to("message/send")
    received = [normalized(r.body, agent_id=wecom_peer.agent_id) for r in calls]
    path = GOLDEN / f"{name}.json"
    rendered = json.dumps(received, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    if UPDATE:
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"no golden file {path.name}: run with KOBOT_UPDATE_GOLDEN=1"
    assert rendered == path.read_text(encoding="utf-8")
