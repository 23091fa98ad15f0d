"""Redis key names of the alerts package, in one place."""

from __future__ import annotations

from kobot import keys

PREFIX = keys.ALERTS_PREFIX

OUTBOX = f"{PREFIX}:outbox"
"""Sorted set: member `<item>|<target key>`, score = when it is due (unix seconds)."""

ATTEMPTS = f"{PREFIX}:attempts"
"""Hash: outbox member -> failed attempts so far (for the backoff)."""

CLAIMS = f"{PREFIX}:claims"
"""Hash: outbox member -> id of the process delivering it (its claim ends with the delivery)."""

OWNERS = f"{PREFIX}:owners"
"""Sorted set: delivering process id -> its last heartbeat (unix seconds); a silent one is dead."""

SUBSCRIPTIONS = f"{PREFIX}:subscriptions"
"""Hash: `<conversation key>|<cluster>` -> Subscription JSON (routes managed from the chat)."""

NOTIFY = f"{keys.NOTIFY_PREFIX}:subscriptions"
"""Hash: `<conversation key>|<cluster>` -> NotifySubscription JSON (the message center)."""


def group(group_id: str) -> str:
    """String: the stored AlertGroupState JSON."""
    return f"{PREFIX}:group:{group_id}"


def group_refs(group_id: str) -> str:
    """Hash: target key -> MessageRef JSON of the message showing the group there; `<target key>@posting`
    -> when a post began whose ref is not recorded yet (it may have reached the platform)."""
    return f"{PREFIX}:group:{group_id}:refs"


def group_delivered(group_id: str) -> str:
    """Hash: target key -> the group version last shown there."""
    return f"{PREFIX}:group:{group_id}:delivered"


def notice(notice_id: str) -> str:
    """String: a cluster event message waiting to be delivered."""
    return f"{keys.NOTIFY_PREFIX}:notice:{notice_id}"


GROUPS_FIRING = f"{PREFIX}:groups:firing"
"""Sorted set: ids of firing groups, score = last update (unix seconds); counts toward GROUPS_KEPT_MAX."""

GROUPS_RESOLVED = f"{PREFIX}:groups:resolved"
"""Sorted set: ids of resolved groups, score = last update; the oldest go first when the limit is met."""

GROUP_BYTES = f"{PREFIX}:groups:bytes"
"""Hash: group id -> size of its stored state JSON in bytes; their sum counts toward GROUP_BYTES_KEPT_MAX."""
