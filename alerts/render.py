"""One message per alert group: title, a line per alert, key labels, links and buttons, within the
platform's size limit.

Large groups are summarized ("+480 more alerts") so a storm stays readable and every message fits
`Capabilities.max_message_bytes` with room for the platform's own markup.

The text follows the group, not the clock: a firing group says when it started ("since 2026-01-05
10:42 UTC"), not how long ago. WeCom and DingTalk custom robots cannot edit a message, so each changed
text is a new message there; a moving "for 3m" made every re-render one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from alerts import defaults
from alerts.models import AlertGroupState, AlertStatus, StoredAlert, clip
from alerts.routing import severity_rank
from alerts.runbooks import Runbook
from alerts.signing import AlertAction
from kobot.messages import Button, ButtonStyle, Field, MessageKind, OutgoingMessage, Tone, format_elapsed
from kobot.settings_alerts import DEFAULT_SEVERITY_ORDER

SignButton = Callable[[AlertAction], str]
"""Makes the signed value of one button for the conversation being rendered for."""

SEVERITY_TONE = {"critical": Tone.DANGER, "error": Tone.DANGER, "warning": Tone.WARNING}

STARTED_FORMAT = "%Y-%m-%d %H:%M UTC"
"""When a firing group started, as its status line shows it: a fixed time (with the date, since groups
fire for days), the same at every render."""


def group_severity(state: AlertGroupState, order: tuple[str, ...]) -> str:
    """The highest severity among the alerts still firing (all alerts once resolved)."""
    pool = state.firing() or state.alerts
    severities = [alert.labels.get("severity", "") for alert in pool]
    known = [s for s in severities if s]
    if not known:
        return state.label("severity") or "alert"
    lowered = [name.lower() for name in order]
    return max(known, key=lambda s: severity_rank(s, lowered))


def _title(state: AlertGroupState, severity: str) -> str:
    cluster = state.label("cluster") or _shared(state, "cluster") or "unknown cluster"
    name = state.label("alertname") or _shared(state, "alertname")
    if name is None:
        name = f"{len({a.labels.get('alertname', '') for a in state.alerts})} alert names"
    shown = "resolved" if state.status is AlertStatus.RESOLVED else severity
    return f"[{shown}] {cluster} · {name}"


def _shared(state: AlertGroupState, label: str) -> str | None:
    values = {alert.labels.get(label) for alert in state.alerts}
    if len(values) == 1:
        (only,) = values
        return only
    return None


def _alert_line(alert: StoredAlert, common: dict[str, str]) -> str:
    text = alert.annotations.get("summary") or alert.annotations.get("description")
    if not text:
        text = alert.labels.get("alertname", "alert")
    distinct = [f"{k}={v}" for k, v in sorted(alert.labels.items()) if common.get(k) != v and v not in text]
    if distinct:
        text = f"{text} ({', '.join(distinct)})"
    mark = "✅ " if alert.status is AlertStatus.RESOLVED else "• "
    return clip(mark + " ".join(text.split()))


def _links(state: AlertGroupState, grafana_url: str | None) -> list[Field]:
    links: list[Field] = []
    annotations = state.common_annotations
    first = (state.firing() or state.alerts)[0] if state.alerts else None
    runbook = annotations.get("runbook_url") or (first.annotations.get("runbook_url") if first else None)
    if runbook:
        links.append(Field(label="Runbook", value=clip(runbook, 500)))
    dashboard = annotations.get("dashboard_url") or (
        first.annotations.get("dashboard_url") if first else None
    )
    uid = annotations.get("dashboard_uid")
    if not dashboard and uid and grafana_url:
        dashboard = f"{grafana_url.rstrip('/')}/d/{uid}"
    if dashboard:
        links.append(Field(label="Grafana", value=clip(dashboard, 500)))
    return links


def _status_line(state: AlertGroupState) -> str:
    firing = len(state.firing()) + state.truncated_alerts
    resolved = len(state.alerts) - len(state.firing())
    if state.status is AlertStatus.RESOLVED:
        return f"resolved after {format_elapsed((state.resolved_at() - state.started_at()).total_seconds())}"
    parts = [f"firing · {firing} alert{'s' if firing != 1 else ''}"]
    if resolved:
        parts.append(f"{resolved} resolved")
    parts.append(f"since {state.started_at().astimezone(UTC):{STARTED_FORMAT}}")
    return " · ".join(parts)


def _buttons(state: AlertGroupState, sign: SignButton, *, runbook: Runbook | None) -> tuple[Button, ...]:
    if state.status is AlertStatus.RESOLVED:
        return ()
    buttons = [
        Button(label=f"Silence {d}", action_id="alert.silence", value=sign(AlertAction(f"silence{d}")))
        for d in defaults.SILENCE_DURATIONS
    ]
    if state.acked_by is None:
        buttons.append(Button(label="Ack", action_id="alert.ack", value=sign(AlertAction.ACK)))
    if runbook is not None:
        buttons.append(
            Button(
                label="Run runbook",
                action_id="alert.runbook",
                value=sign(AlertAction.RUNBOOK),
                style=ButtonStyle.PRIMARY,
            )
        )
    return tuple(buttons)


def render_group(
    state: AlertGroupState,
    *,
    sign: SignButton,
    max_bytes: int,
    severity_order: tuple[str, ...] = DEFAULT_SEVERITY_ORDER,
    grafana_url: str | None = None,
    now: datetime | None = None,
    runbook: Runbook | None = None,
) -> OutgoingMessage:
    """The group's message; its plain text stays within MESSAGE_HEADROOM of `max_bytes`.

    `runbook` is the allowed command a Run runbook button would run (see `alerts.runbooks`); the
    command is shown next to the button, so the clicker sees what they run. `now` only tells which
    silences still hold: the text is otherwise the same whenever the unchanged group is rendered."""
    moment = now or datetime.now(UTC)
    severity = group_severity(state, severity_order)
    resolved = state.status is AlertStatus.RESOLVED
    tone = Tone.SUCCESS if resolved else SEVERITY_TONE.get(severity.lower(), Tone.INFO)
    fields = [Field(label=k, value=clip(v, 200)) for k in defaults.KEY_LABELS if (v := state.label(k))]
    if state.acked_by:
        when = state.acked_at.strftime("%H:%M UTC") if state.acked_at else ""
        fields.append(Field(label="Acked by", value=f"{state.acked_by} {when}".strip()))
    live = [s for s in state.silences if s.ends_at > moment]
    if live and not resolved:
        latest = max(live, key=lambda s: s.ends_at)
        fields.append(
            Field(label="Silenced", value=f"by {latest.created_by} until {latest.ends_at:%Y-%m-%d %H:%M} UTC")
        )
    if runbook is not None and not resolved:
        fields.append(Field(label="Runbook command", value=clip(runbook.command, 200)))
    fields.extend(_links(state, grafana_url))
    generator = next((a.generator_url for a in state.alerts if a.generator_url), None)
    base = OutgoingMessage(
        kind=MessageKind.ALERT,
        title=clip(_title(state, severity), 200),
        tone=tone,
        status=_status_line(state),
        fields=tuple(fields),
        buttons=_buttons(state, sign, runbook=runbook),
        footer=clip(generator, 500) if generator else None,
    )
    ordered = sorted(
        state.alerts, key=lambda a: (a.status is AlertStatus.RESOLVED, a.starts_at, a.fingerprint)
    )
    lines = [_alert_line(alert, state.common_labels) for alert in ordered]
    return _fit(base, lines, extra=state.truncated_alerts, budget=int(max_bytes * defaults.MESSAGE_HEADROOM))


def _size(message: OutgoingMessage) -> int:
    return len(message.to_text().encode())


def _fit(base: OutgoingMessage, lines: list[str], *, extra: int, budget: int) -> OutgoingMessage:
    """As many alert lines as fit, then "+N more alerts"; drop links and footer if even that is too big."""
    shown = min(len(lines), defaults.ALERT_LINES_MAX)
    while True:
        hidden = len(lines) - shown + extra
        body_lines = lines[:shown] + ([f"+{hidden} more alert{'s' if hidden != 1 else ''}"] if hidden else [])
        message = base.model_copy(update={"body": "\n".join(body_lines) or None})
        if _size(message) <= budget or shown == 0:
            break
        shown -= 1
    if _size(message) > budget:
        message = message.model_copy(update={"footer": None, "fields": message.fields[:3]})
    if _size(message) > budget:
        message = message.model_copy(update={"body": None, "fields": ()})
    return message
