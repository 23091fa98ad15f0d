"""Slack's text markup back to what the user typed, payloads missing what kobot needs, the factory."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.chat.slack.adapter import SlackAdapter
from bot.chat.slack.inbound import (
    InboundPayloadError,
    Sender,
    clean_text,
    clicks_from_actions,
    event_user,
    message_from_event,
)
from bot.chat.slack.render import kobot_action_id, slack_action_id
from kobot.settings_slack import SlackSettings


@pytest.mark.parametrize(
    ("raw", "typed"),
    [
        ("<@U0KOBOT> scale workers +2 on prod", "scale workers +2 on prod"),
        ("<@U0KOBOT>   扩容 prod 工作节点 5", "扩容 prod 工作节点 5"),
        ("ask <@U0BOB|bob> about <#C0OPS|ops>", "ask @bob about #ops"),
        ("ping <@U0BOB>", "ping @U0BOB"),
        (
            "hosts=<http://10.0.0.1|10.0.0.1>,<http://node2.example|node2.example>",
            "hosts=10.0.0.1,node2.example",
        ),
        ("notify <mailto:a@example.org|a@example.org>", "notify a@example.org"),
        ("labels a&amp;b &lt;x&gt;", "labels a&b <x>"),
        ("<!here> status", "@here status"),
    ],
)
def test_clean_text(raw: str, typed: str) -> None:
    assert clean_text(raw, bot_user_id="U0KOBOT") == typed


def test_only_the_bots_own_mention_is_dropped() -> None:
    assert clean_text("<@U0OTHERBOT> help", bot_user_id="U0KOBOT") == "@U0OTHERBOT help"


def test_event_without_user_or_channel_is_refused() -> None:
    sender = Sender(user_id="U0ALICE")
    with pytest.raises(InboundPayloadError, match="channel"):
        message_from_event(
            {"type": "app_mention", "ts": "1.1", "text": "x"}, sender=sender, bot_user_id=None, team_id=""
        )


def test_block_actions_without_actions_is_refused() -> None:
    with pytest.raises(InboundPayloadError):
        clicks_from_actions({"channel": {"id": "C1"}, "actions": []}, sender=Sender(user_id="U0BOB"))


def test_lone_surrogates_dropped_from_text_and_ids_carrying_them_refused() -> None:
    """Bolt's JSON decoding turns an escape like \\udfff into a lone surrogate; none passes the adapter."""
    sender = Sender(user_id="U0ALICE")
    event = {"type": "app_mention", "ts": "1.1", "channel": "C1", "text": "<@U0KOBOT> list\udfff clusters"}
    message = message_from_event(event, sender=sender, bot_user_id="U0KOBOT", team_id="T\ud83d1")
    assert message.text == "list clusters"
    assert message.conversation.extra == {"team_id": "T1"}
    with pytest.raises(InboundPayloadError, match="channel"):
        message_from_event(event | {"channel": "C\udfff"}, sender=sender, bot_user_id=None, team_id="")
    with pytest.raises(InboundPayloadError, match="user"):
        event_user(event | {"user": "U0\udfff"})


@pytest.mark.parametrize("action_id", ["approval.approve", "alert.silence", "odd#name", "x#1y"])
def test_action_id_suffix_round_trips(action_id: str) -> None:
    assert kobot_action_id(slack_action_id(action_id, 7)) == action_id


def test_adapter_is_built_only_when_slack_is_configured(
    redis_url: str, data_dir: Path, signing_secret: str
) -> None:
    from bot.chat.registry import build_adapters
    from bot.runtime import build_runtime
    from kobot.settings import Settings

    bare = build_runtime(Settings(redis_url=SecretStr(redis_url), data_dir=data_dir))
    try:
        assert "slack" not in build_adapters(bare)
    finally:
        bare.close()
    slack = SlackSettings(bot_token=SecretStr("xoxb-from-test"), signing_secret=SecretStr(signing_secret))
    configured = build_runtime(Settings(redis_url=SecretStr(redis_url), data_dir=data_dir, slack=slack))
    try:
        adapter = build_adapters(configured)["slack"]
        assert isinstance(adapter, SlackAdapter)
        assert adapter.router() is not None
    finally:
        configured.close()
