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
        """Whether a payload names a workspace (or organization) other than this one. A payload naming
        none (Slack's URL check) is not refused for it."""
        team, enterprise = named_workspace(document)
        if team is None and enterprise is None:
            return False
        if self.organization_wide and self.enterprise_id is not None:
            return enterprise != self.enterprise_id
        if self.team_id is None:
            return False  # auth.test named no workspace: there is nothing to compare with
        return team != self.team_id


def named_workspace(document: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The team id and enterprise id a payload was sent for: top-level ids in events and slash commands,
    `team` and `enterprise` objects in interactions."""
    return _id_of(document, "team"), _id_of(document, "enterprise")


def _id_of(document: Mapping[str, Any], name: str) -> str | None:
    named = _text(document.get(f"{name}_id"))
    if named is not None:
        return named
    value = document.get(name)
    if isinstance(value, Mapping):
        return _text(value.get("id"))
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
