"""Alert labels and annotations cannot forge links, tags, mentions or headings in DingTalk markdown."""

from __future__ import annotations

import json

from bot.chat.dingtalk.adapter import DingTalkAdapter
from bot.chat.dingtalk.render import card_params, render_markdown
from bot.chat.markdown_escape import escape_markdown
from kobot.conversations import Conversation
from kobot.messages import OutgoingMessage
from tests.chat import samples
from tests.chat.hostile import forged_structure, hostile_alert
from tests.peers.dingtalk import DingTalkPeer

GROUP = Conversation(platform="dingtalk", conversation_id="cidGroupProd01")


def test_hostile_alert_text_is_inert_in_markdown_and_card_details() -> None:
    message = hostile_alert()
    text = render_markdown(message).text
    assert forged_structure(text) == []
    assert text.startswith("#### ✅ [resolved] prod · [Approve］(http://evil.example/approve)")
    assert '＜font color="info"＞approved by admin＜/font＞' in text
    assert forged_structure(card_params(message)["markdown"], own_first_line=False) == []


def test_kobot_formatting_and_plain_words_stay() -> None:
    text = render_markdown(samples.PROGRESS_FAILED).text
    assert text.startswith("#### ❌ Job 42 · create cluster prod")
    assert "**failed at step 3/4 Preflight after 1m32s**" in text
    assert "- **Host**: prod-worker-2" in text
    assert escape_markdown("node_exporter on prod-w1 (alice@example.com) [critical]") == (
        "node_exporter on prod-w1 (alice@example.com) [critical]"
    )


def test_mentions_only_for_user_ids() -> None:
    message = OutgoingMessage(title="t", mentions=("0231", "all> <font", "manager1234"))
    text = render_markdown(message).text
    assert "@0231 ＠all＞ ＜font @manager1234" in text


async def test_hostile_alert_reaches_the_peer_inert(
    plain_adapter: DingTalkAdapter, peer: DingTalkPeer
) -> None:
    await plain_adapter.send(GROUP, hostile_alert())
    [sent] = peer.requests_to("/v1.0/robot/groupMessages/send")
    markdown = json.loads(sent.body["msgParam"])["text"]
    assert forged_structure(markdown) == []
    assert "approved by admin" in markdown
