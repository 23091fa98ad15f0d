"""Which verified Slack payloads were sent for the workspace kobot's bot token belongs to."""

from __future__ import annotations

from typing import Any

import pytest

from bot.chat.slack.workspace import Workspace

ONE_WORKSPACE = Workspace.of_auth_test({"ok": True, "team_id": "T1", "is_enterprise_install": False})
IN_A_GRID = Workspace.of_auth_test({"ok": True, "team_id": "T1", "enterprise_id": "E1"})
ORGANIZATION_WIDE = Workspace.of_auth_test({"ok": True, "enterprise_id": "E1", "is_enterprise_install": True})
UNNAMED = Workspace.of_auth_test({"ok": True})

EVENT_T1: dict[str, Any] = {"type": "event_callback", "team_id": "T1", "event": {}}
EVENT_T2: dict[str, Any] = {"type": "event_callback", "team_id": "T2", "event": {}}
EVENT_T2_E1: dict[str, Any] = {"type": "event_callback", "team_id": "T2", "enterprise_id": "E1", "event": {}}
EVENT_T3_E2: dict[str, Any] = {"type": "event_callback", "team_id": "T3", "enterprise_id": "E2", "event": {}}
CLICK_T1: dict[str, Any] = {"type": "block_actions", "team": {"id": "T1"}, "enterprise": None}
CLICK_T2: dict[str, Any] = {"type": "block_actions", "team": {"id": "T2"}, "enterprise": {"id": "E1"}}
SLASH_T2: dict[str, Any] = {"command": "/kobot", "team_id": "T2"}
URL_CHECK: dict[str, Any] = {"type": "url_verification", "challenge": "c"}
# Slack Connect: the top-level team_id names the workspace that made the channel; authorizations name
# the installation the event was sent to
SHARED_CHANNEL_FOR_T1: dict[str, Any] = {
    "type": "event_callback",
    "team_id": "T9",
    "authorizations": [{"team_id": "T1", "enterprise_id": None, "is_bot": True}],
    "event": {},
}
SHARED_CHANNEL_FOR_T2: dict[str, Any] = {
    "type": "event_callback",
    "team_id": "T1",
    "authorizations": [{"team_id": "T2", "enterprise_id": None, "is_bot": True}],
    "event": {},
}
UNREADABLE: dict[str, Any] = {"type": "event_callback", "authorizations": [{"team": 5}], "event": {}}


@pytest.mark.parametrize(
    ("workspace", "payload", "elsewhere"),
    [
        (ONE_WORKSPACE, EVENT_T1, False),
        (ONE_WORKSPACE, EVENT_T2, True),
        (ONE_WORKSPACE, CLICK_T1, False),
        (ONE_WORKSPACE, CLICK_T2, True),
        (ONE_WORKSPACE, SLASH_T2, True),
        (ONE_WORKSPACE, URL_CHECK, False),
        (ONE_WORKSPACE, SHARED_CHANNEL_FOR_T1, False),
        (ONE_WORKSPACE, SHARED_CHANNEL_FOR_T2, True),
        (ONE_WORKSPACE, UNREADABLE, True),
        # installed in one workspace of a grid: another workspace of the same organization is elsewhere
        (IN_A_GRID, EVENT_T2_E1, True),
        # installed across the organization: any of its workspaces, none of another organization's
        (ORGANIZATION_WIDE, EVENT_T2_E1, False),
        (ORGANIZATION_WIDE, CLICK_T2, False),
        (ORGANIZATION_WIDE, EVENT_T3_E2, True),
        (ORGANIZATION_WIDE, EVENT_T2, True),
        # auth.test named nothing to compare with
        (UNNAMED, EVENT_T2, False),
    ],
)
def test_a_payload_is_sent_elsewhere_only_when_it_names_another_workspace(
    workspace: Workspace, payload: dict[str, Any], elsewhere: bool
) -> None:
    assert workspace.sent_elsewhere(payload) is elsewhere
