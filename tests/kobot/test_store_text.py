"""No lone surrogate breaks a store write: chat models drop them, store clients escape any left."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from kobot.conversations import Conversation, Identity, InboundMessage
from kobot.settings import Settings
from kobot.store import open_store


def test_a_lone_surrogate_never_fails_a_store_write(redis_url: str, data_dir: Path) -> None:
    store = open_store(Settings(redis_url=SecretStr(redis_url), data_dir=data_dir))
    try:
        client = store.client()
        client.set("kobot:test:user:U0\udfff", "name\ud83d")
        assert client.get("kobot:test:user:U0\udfff") == b"name\\ud83d"
        assert client.exists("kobot:test:user:U0\\udfff") == 1, "the same string always makes the same key"
    finally:
        store.close()


def test_chat_models_never_carry_a_lone_surrogate() -> None:
    """Whatever an adapter hands on (WeCom's smart-bot JSON, a DingTalk frame, Slack), no string in it
    can break a key, a store write or a record's JSON dump."""
    who = Identity(platform="wecom", user_id="al\udfffice", display_name="Al\ud83dice")
    where = Conversation(
        platform="wecom", conversation_id="smartbot:@\udfffalice", extra={"k\udfff": "v\ud800"}
    )
    message = InboundMessage(
        identity=who, conversation=where, text="list\udfff clusters", message_id="m\udfff"
    )
    assert (who.user_id, who.display_name) == ("alice", "Alice")
    assert (where.conversation_id, where.extra) == ("smartbot:@alice", {"k": "v"})
    assert (message.text, message.message_id) == ("list clusters", "m")
    message.model_dump_json().encode()
