"""The Slack workspace kobot's bot token belongs to, and whether a verified request was sent for it.

The signing secret belongs to the app, not to a workspace: installed in a second workspace (public
distribution turned on, or an admin installing it by mistake), the app receives that workspace's events,
commands and clicks signed with the same secret. kobot acts only in the workspace `auth.test` names for
its token (or, for an app installed across an Enterprise Grid organization, in that organization); it
could not even answer elsewhere, and a policy subject such as `*` must not reach people there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt.request.internals import extract_enterprise_id, extract_team_id


@dataclass(frozen=True)
class Workspace:
    """What `auth.test` says the bot token belongs to."""

    team_id: str | None
    enterprise_id: str | None
    organization_wide: bool
    """The app is installed across the whole Enterprise Grid organization (`is_enterprise_install`)."""

    @classmethod
    def of_auth_test(cls, answer: Mapping[str, Any]) -> Workspace:
        return cls(
            team_id=_text(answer.get("team_id")),
            enterprise_id=_text(answer.get("enterprise_id")),
            organization_wide=answer.get("is_enterprise_install") is True,
        )

    def sent_elsewhere(self, document: Mapping[str, Any]) -> bool:
        """Whether a payload names a workspace (or organization) other than this one, or names one in a
        shape that cannot be read. A payload naming none (Slack's URL check) is not refused for it."""
        try:
            team, enterprise = named_workspace(document)
        except UNREADABLE:
            return True
        if team is None and enterprise is None:
            return False
        if self.organization_wide and self.enterprise_id is not None:
            return enterprise != self.enterprise_id
        if self.team_id is None:
            return False  # auth.test named no workspace: there is nothing to compare with
        return team != self.team_id


UNREADABLE = (TypeError, AttributeError, KeyError, IndexError)
"""What reading the ids raises on a shape Slack never sends (Bolt's readers assume Slack's shapes)."""


def describe_workspace(document: Mapping[str, Any]) -> str:
    """The workspace a payload names, for the log."""
    try:
        team, enterprise = named_workspace(document)
    except UNREADABLE:
        return "an unreadable workspace"
    return f"workspace {team!r} (organization {enterprise!r})"


def named_workspace(document: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The team id and enterprise id of the installation a payload was sent to, read as Bolt reads them
    to find an installation: an event's `authorizations[0]` before its top-level ids, which in a Slack
    Connect channel name the workspace that made the channel, not the one receiving the event."""
    payload = dict(document)
    return _text(extract_team_id(payload)), _text(extract_enterprise_id(payload))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
