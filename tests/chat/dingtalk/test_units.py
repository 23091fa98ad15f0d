"""Translation, rendering and settings without a network: the pieces the peer tests build on."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from alerts.delivery import delivery_timeout
from bot.chat.dingtalk import defaults, inbound, render
from bot.chat.dingtalk.adapter import DingTalkAdapter
from kobot.messages import OutgoingMessage
from kobot.settings import load_settings
from kobot.settings_dingtalk import DingTalkSettings
from tests.chat import samples


def _chat(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "conversationId": "cid1",
        "conversationType": "2",
        "msgId": "m1",
        "senderStaffId": "s1",
        "senderNick": "Alice",
        "sessionWebhook": "http://127.0.0.1:1/robot/sendBySession?session=x",
        "sessionWebhookExpiredTime": int(time.time() * 1000) + 60_000,
        "createAt": int(time.time() * 1000),
        "msgtype": "text",
        "text": {"content": "  扩容 prod 工作节点 5 "},
    }
    data.update(overrides)
    return data


def test_chat_text_is_stripped_and_typed() -> None:
    message = inbound.chat_message(_chat(), now_ms=int(time.time() * 1000))
    assert message.text == "扩容 prod 工作节点 5"
    assert message.identity.key == "dingtalk:s1"
    assert message.conversation.key == "dingtalk:cid1"


def test_rich_text_keeps_its_text_parts() -> None:
    data = _chat(
        msgtype="richText",
        content={"richText": [{"text": "list"}, {"downloadCode": "x"}, {"text": "clusters"}]},
    )
    data.pop("text")
    assert inbound.chat_message(data, now_ms=int(time.time() * 1000)).text == "list clusters"


def test_overlong_text_is_refused_with_the_reason() -> None:
    with pytest.raises(inbound.InboundRefused, match="characters long") as refused:
        inbound.chat_message(_chat(text={"content": "x" * 5000}), now_ms=int(time.time() * 1000))
    assert refused.value.conversation is not None


def test_message_without_sender_is_refused_without_answer() -> None:
    data = _chat()
    data.pop("senderStaffId")
    with pytest.raises(inbound.InboundRefused) as refused:
        inbound.chat_message(data, now_ms=int(time.time() * 1000))
    assert refused.value.conversation is None


def test_card_click_needs_a_json_content_with_params() -> None:
    data = {"outTrackId": "kobot-1", "userId": "s1", "extension": "{}", "content": "not json"}
    with pytest.raises(inbound.InboundRefused):
        inbound.card_click(data)
    data["content"] = json.dumps({"cardPrivateData": {"params": {"action_id": "a", "value": "v"}}})
    assert inbound.card_click(data) == inbound.CardClick(
        out_track_id="kobot-1", user_id="s1", action_id="a", value="v"
    )


def test_card_params_are_all_strings() -> None:
    for message in samples.ALL.values():
        params = render.card_params(message)
        assert all(isinstance(v, str) for v in params.values())


def test_split_keeps_every_line_and_each_part_fits() -> None:
    text = "\n".join(f"line {n} 节点" * 20 for n in range(150))
    parts = render.split_markdown(render.Markdown(title="t", text=text), limit_bytes=20_000)
    assert len(parts) > 1
    assert all(
        len(json.dumps({"title": p.title, "text": p.text}, ensure_ascii=False).encode()) < 20_000
        for p in parts
    )
    assert "\n".join(p.text for p in parts) == text


def test_split_cuts_beyond_the_part_limit_and_says_so() -> None:
    text = "\n".join("x" * 1000 for _ in range(200))
    parts = render.split_markdown(render.Markdown(title="t", text=text), limit_bytes=20_000)
    assert len(parts) == 4
    assert "more bytes not shown" in parts[-1].text


def test_truncate_never_splits_a_character() -> None:
    cut = render.truncate_bytes("节点节点", limit_bytes=7)
    assert cut == "节…" and len(cut.encode()) <= 7


def test_markdown_has_no_fenced_code() -> None:
    doc = render.render_markdown(samples.PROGRESS_FAILED)
    assert "```" not in doc.text and "> swap is on" in doc.text


def test_robot_webhook_without_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="set together"):
        DingTalkSettings(client_id="a", client_secret=SecretStr("b"), robot_webhook_url=SecretStr("http://x"))


def test_settings_from_nested_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOBOT_DINGTALK__CLIENT_ID", "dingapp")
    monkeypatch.setenv("KOBOT_DINGTALK__CLIENT_SECRET", "s3cret")
    monkeypatch.setenv("KOBOT_DINGTALK__ROBOTS", '{"oncall": {"webhook_url": "http://x", "secret": "SECy"}}')
    settings = load_settings()
    assert settings.dingtalk is not None
    assert settings.dingtalk.client_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings.dingtalk)
    assert set(settings.dingtalk.all_robots()) == {"oncall"}


def test_plain_reply_renders_title_only() -> None:
    doc = render.render_markdown(OutgoingMessage(title="ok"))
    assert doc == render.Markdown(title="ok", text="#### ℹ️ ok")


def test_adapter_is_built_only_when_configured(redis_url: str, data_dir: Path) -> None:
    from bot.chat.dingtalk.adapter import DingTalkAdapter, build
    from bot.runtime import build_runtime
    from kobot.settings import Settings

    plain = build_runtime(Settings(redis_url=SecretStr(redis_url), data_dir=data_dir))
    configured = build_runtime(
        Settings(
            redis_url=SecretStr(redis_url),
            data_dir=data_dir,
            dingtalk=DingTalkSettings(client_id="dingapp", client_secret=SecretStr("s")),
        )
    )
    try:
        assert build(plain) is None
        adapter = build(configured)
        assert isinstance(adapter, DingTalkAdapter)
        assert adapter.capabilities.max_message_bytes == 20_000
    finally:
        plain.close()
        configured.close()


def test_robot_send_gives_up_before_the_alert_delivery_does() -> None:
    # Were the robot still waiting when the alert outbox cancels the send, a post on the wire could
    # land after the outbox scheduled its retry: a duplicate alert.
    longest = defaults.ROBOT_SEND_WAIT_SECONDS + defaults.HTTP_TIMEOUT_SECONDS
    assert DingTalkAdapter.call_budget_seconds is not None
    assert DingTalkAdapter.call_budget_seconds >= longest
    assert delivery_timeout(DingTalkAdapter.__new__(DingTalkAdapter)) > longest


def test_public_card_always_carries_its_buttons_list() -> None:
    for message in samples.ALL.values():
        params = render.public_card_params(message)
        assert params["markdown"], "the public template shows nothing without markdown"
        buttons = json.loads(params["sys_full_json_obj"])["msgButtons"]
        assert [b["params"]["value"] for b in buttons] == [b.value for b in message.buttons]
        assert all(b["request"] is True for b in buttons)


def test_conversation_of_a_raw_frame_keeps_where_to_answer() -> None:
    conversation = inbound.conversation_of(_chat(conversationType="1"))
    assert conversation is not None and conversation.is_direct
    assert conversation.extra[inbound.EXTRA_SESSION_WEBHOOK].startswith("http://127.0.0.1:1/")
    assert conversation.extra[inbound.EXTRA_USER_ID] == "s1"
    assert inbound.conversation_of({"text": {"content": "hi"}}) is None
