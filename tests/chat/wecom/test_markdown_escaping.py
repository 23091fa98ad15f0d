"""Alert labels and annotations cannot forge links, `<font>`, `<@user>` or headings in WeCom markdown."""

from __future__ import annotations

from bot.chat.wecom.adapter import WeComAdapter
from bot.chat.wecom.render import render_markdown
from kobot.conversations import Conversation
from kobot.messages import OutgoingMessage
from tests.chat import samples
from tests.chat.hostile import forged_structure, hostile_alert
from tests.peers.wecom import WeComPeer


def test_hostile_alert_text_is_inert_in_markdown() -> None:
    text = render_markdown(hostile_alert())
    assert forged_structure(text) == []
    assert text.startswith("**✅ [resolved] prod · [Approve］(http://evil.example/approve)**")
    assert text.count("<font") == 2, "only kobot's own colours: status and footer"


def test_kobot_formatting_stays() -> None:
    text = render_markdown(samples.APPROVAL_REQUEST)
    assert text.startswith("**⚠️ Approval needed · delete cluster staging**")
    assert '<font color="warning">requested by Alice' in text
    assert "> **Plan:** destroy 3 masters, 5 workers" in text


def test_mentions_only_for_user_ids() -> None:
    text = render_markdown(OutgoingMessage(title="t", mentions=("alice", "all><@bob")))
    assert text.endswith("<@alice> ＠all＞＜@bob")


async def test_hostile_alert_reaches_the_peer_inert(adapter: WeComAdapter, wecom_peer: WeComPeer) -> None:
    await adapter.send(Conversation(platform="wecom", conversation_id="user:alice"), hostile_alert())
    [sent] = wecom_peer.requests_to("message/send")
    markdown = sent.body["markdown"]["content"]
    assert forged_structure(markdown) == []
    assert "approved by admin" in markdown
