"""An alert whose labels and annotations try to forge markdown structure, as kobot renders it."""

from __future__ import annotations

from datetime import UTC, datetime

from alerts.models import AlertGroupState, AlertStatus, StoredAlert
from alerts.render import render_group
from kobot.messages import OutgoingMessage

LINK = "[Approve](http://evil.example/approve)"
FONT = '<font color="info">approved by admin</font>'
SUMMARY = "<@all> @all **Approved by admin**\n# Approved\n> quoted\n- item ![x](http://evil.example/p.png)"


def hostile_alert(*, status: AlertStatus = AlertStatus.RESOLVED) -> OutgoingMessage:
    alert = StoredAlert(
        fingerprint="f1",
        status=status,
        labels={"alertname": LINK, "cluster": "prod", "node": FONT, "team": "__ops__ <@alice>"},
        annotations={"summary": SUMMARY},
        starts_at=datetime(2026, 1, 1, 10, 0, tzinfo=UTC),
        ends_at=datetime(2026, 1, 1, 10, 5, tzinfo=UTC),
        generator_url="http://prometheus.test/graph?g0.expr=up&x=[a](http://evil.example)",
    )
    state = AlertGroupState(
        group_id="g1",
        group_key="k",
        receiver="kobot",
        status=status,
        group_labels={"alertname": LINK, "cluster": "prod"},
        common_labels=dict(alert.labels),
        alerts=[alert],
    )
    message = render_group(state, sign=lambda action: f"signed-{action.value}", max_bytes=20_000)
    return message.model_copy(update={"body": (message.body or "") + "\n" + SUMMARY, "code": SUMMARY})


def forged_structure(markdown: str, *, own_first_line: bool = True) -> list[str]:
    """What in `markdown` an attacker's text could have made: links, tags, mentions, headings, quotes."""
    problems = []
    for needle in ("](", '">approved by admin', "<@all>", "<@alice>", "**Approved", "__ops__"):
        if needle in markdown:
            problems.append(needle)
    lines = markdown.split("\n")[1 if own_first_line else 0 :]
    problems.extend(line for line in lines if line.lstrip().startswith(("#", "- item", "> quoted", "@all")))
    return problems
