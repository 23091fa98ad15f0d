"""Golden files: the exact chat.postMessage body Slack receives for every sample message.

The body is captured at the peer (what went over the socket), so slack-sdk's own handling of the
arguments is pinned too. Regenerate with KOBOT_UPDATE_GOLDEN=1 after a deliberate rendering change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from bot.chat.slack.adapter import SlackAdapter
from bot.chat.slack.render import render
from kobot.conversations import Conversation
from kobot.messages import OutgoingMessage
from tests.chat.samples import ALL
from tests.peers.slack import SlackPeer

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE = os.environ.get("KOBOT_UPDATE_GOLDEN") == "1"
"""Read at import: the shared fixtures clear KOBOT_ variables before each test runs."""

CHANNEL = Conversation(platform="slack", conversation_id="C0GOLDEN")


def check_golden(name: str, payload: dict[str, Any]) -> None:
    path = GOLDEN_DIR / f"{name}.json"
    text = json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    if UPDATE:
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path.name}; run with KOBOT_UPDATE_GOLDEN=1 once"
    assert json.loads(path.read_text(encoding="utf-8")) == payload


@pytest.mark.parametrize("name", sorted(ALL))
async def test_peer_receives_golden_payload(name: str, adapter: SlackAdapter, peer: SlackPeer) -> None:
    await adapter.send(CHANNEL, ALL[name])
    [call] = peer.requests_to("chat.postMessage")
    assert call.status == 200 and call.error is None
    check_golden(name, call.body)


@pytest.mark.parametrize("name", sorted(ALL))
def test_renderer_matches_what_went_over_the_wire(name: str) -> None:
    golden = json.loads((GOLDEN_DIR / f"{name}.json").read_text(encoding="utf-8"))
    rendered = render(ALL[name])
    assert {"channel": "C0GOLDEN", **rendered} == golden


def test_every_sample_has_a_golden_file() -> None:
    assert sorted(p.stem for p in GOLDEN_DIR.glob("*.json")) == sorted(ALL)


def test_user_text_cannot_form_mentions_or_links() -> None:
    hostile = OutgoingMessage(
        title="<!channel>", body="<@U0ALICE> & <http://evil|click>", mentions=("U0BOB", "ops")
    )
    payload = render(hostile)
    assert payload["text"].startswith("ℹ️ &lt;!channel&gt;")
    assert payload["blocks"][0]["text"]["type"] == "plain_text"
    assert payload["blocks"][1]["text"]["text"] == "&lt;@U0ALICE&gt; &amp; &lt;http://evil|click&gt;"
    assert payload["text"].endswith("\n<@U0BOB> @ops")


def test_duplicate_action_ids_are_made_unique_and_values_kept() -> None:
    payload = render(ALL["alert_firing"])
    [actions] = [b for b in payload["blocks"] if b["type"] == "actions"]
    ids = [e["action_id"] for e in actions["elements"]]
    assert len(set(ids)) == len(ids) == 5
    assert [e["value"] for e in actions["elements"]] == [b.value for b in ALL["alert_firing"].buttons]
