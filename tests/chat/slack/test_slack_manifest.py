"""The shipped app manifest asks Slack for exactly what the adapter listens to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.chat.slack import adapter
from bot.chat.slack.defaults import EVENTS_PATH

MANIFEST = Path(adapter.__file__).parent / "manifest.yaml"


def load() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_manifest_routes_everything_to_the_events_path() -> None:
    manifest = load()
    urls = [
        manifest["settings"]["event_subscriptions"]["request_url"],
        manifest["settings"]["interactivity"]["request_url"],
        *(command["url"] for command in manifest["features"]["slash_commands"]),
    ]
    assert all(url.endswith(EVENTS_PATH) for url in urls)


def test_manifest_events_commands_and_scopes_match_the_listeners() -> None:
    manifest = load()
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_mention", "message.im"]
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == [adapter.SLASH_COMMAND]
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"app_mentions:read", "im:history", "commands", "chat:write", "users:read"} <= scopes
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
