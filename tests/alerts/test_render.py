"""Rendering one group: title, lines, links, buttons; size limits per platform; signed buttons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from alerts.delivery import offered_runbook
from alerts.models import AlertGroupState, AlertStatus, StoredAlert
from alerts.render import render_group
from alerts.signing import AlertAction, ButtonRefused, sign_button, verify_button
from kobot.messages import OutgoingMessage, Tone
from kobot.settings_alerts import AlertsSettings

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
DINGTALK_BYTES = 20_000
WECOM_MARKDOWN_BYTES = 4_096


def _group(count: int, *, status: AlertStatus = AlertStatus.FIRING, summary_pad: int = 0) -> AlertGroupState:
    alerts = [
        StoredAlert(
            fingerprint=f"{i:04d}",
            status=status,
            labels={
                "alertname": "KubePodCrashLooping",
                "cluster": "prod",
                "severity": "warning",
                "pod": f"api-{i}",
            },
            annotations={
                "summary": f"pod api-{i} restarts 中文 " + "x" * summary_pad,
                "runbook_url": "http://rb.test/crash",
            },
            starts_at=NOW - timedelta(minutes=17),
            ends_at=NOW if status is AlertStatus.RESOLVED else datetime(1, 1, 1, tzinfo=UTC),
            generator_url="http://prometheus.test/graph",
        )
        for i in range(count)
    ]
    return AlertGroupState(
        group_id="g1",
        group_key='{}:{alertname="KubePodCrashLooping"}',
        receiver="kobot",
        status=status,
        group_labels={"alertname": "KubePodCrashLooping", "cluster": "prod"},
        common_labels={
            "alertname": "KubePodCrashLooping",
            "cluster": "prod",
            "severity": "warning",
            "namespace": "apps",
        },
        alerts=alerts,
    )


def _sign(action: AlertAction) -> str:
    return f"signed-{action.value}"


@pytest.mark.parametrize("limit", [WECOM_MARKDOWN_BYTES, DINGTALK_BYTES, 3_000])
def test_large_groups_are_summarized_within_the_platform_limit(limit: int) -> None:
    message = render_group(_group(500, summary_pad=150), sign=_sign, max_bytes=limit, now=NOW)
    text = message.to_text()
    assert len(text.encode()) <= limit
    assert "firing · 500 alerts" in text
    assert "more alerts" in text
    assert message.buttons, "buttons survive summarizing"


def test_firing_message_parts() -> None:
    message = render_group(_group(2), sign=_sign, max_bytes=WECOM_MARKDOWN_BYTES, now=NOW)
    assert message.title == "[warning] prod · KubePodCrashLooping"
    assert message.tone is Tone.WARNING
    assert message.status == "firing · 2 alerts · since 2026-01-05 11:43 UTC"
    assert message.body == "• pod api-0 restarts 中文\n• pod api-1 restarts 中文"
    fields = {f.label: f.value for f in message.fields}
    assert fields == {"namespace": "apps", "Runbook": "http://rb.test/crash"}
    assert message.footer == "http://prometheus.test/graph"
    assert [b.value for b in message.buttons] == [
        "signed-silence1h",
        "signed-silence4h",
        "signed-silence24h",
        "signed-ack",
    ]


def test_a_firing_group_reads_the_same_minutes_and_days_later() -> None:
    # WeCom and DingTalk robots post a changed text as a new message: the clock must not change it.
    state = _group(2)
    at_start = render_group(state, sign=_sign, max_bytes=WECOM_MARKDOWN_BYTES, now=NOW)
    for later in (timedelta(minutes=3), timedelta(hours=5), timedelta(days=2)):
        again = render_group(state, sign=_sign, max_bytes=WECOM_MARKDOWN_BYTES, now=NOW + later)
        assert again == at_start, later
    assert "since 2026-01-05 11:43 UTC" in at_start.to_text()


def test_resolved_message_has_duration_and_no_buttons() -> None:
    message = render_group(
        _group(3, status=AlertStatus.RESOLVED), sign=_sign, max_bytes=WECOM_MARKDOWN_BYTES, now=NOW
    )
    assert message.title == "[resolved] prod · KubePodCrashLooping"
    assert message.tone is Tone.SUCCESS
    assert message.status == "resolved after 17m00s"
    assert message.buttons == ()


def test_truncated_alerts_are_counted() -> None:
    state = _group(2).model_copy(update={"truncated_alerts": 40})
    message = render_group(state, sign=_sign, max_bytes=WECOM_MARKDOWN_BYTES, now=NOW)
    assert "firing · 42 alerts" in (message.status or "")
    assert "+40 more alerts" in (message.body or "")


def test_button_signatures_bind_group_action_conversation_and_expiry() -> None:
    secret = b"s" * 32
    value = sign_button(
        secret=secret, group_id="g1", action=AlertAction.SILENCE_4H, conversation_key="slack:C1", now=1000
    )
    grant = verify_button(
        secret=secret, value=value, action_id="alert.silence", conversation_key="slack:C1", now=1001
    )
    assert (grant.group_id, grant.action) == ("g1", AlertAction.SILENCE_4H)
    refusals = [
        dict(value=value, action_id="alert.silence", conversation_key="slack:C2", now=1001),
        dict(
            value=value.replace("silence4h", "silence24h"),
            action_id="alert.silence",
            conversation_key="slack:C1",
            now=1001,
        ),
        dict(
            value=value.replace("g1.", "g2.", 1),
            action_id="alert.silence",
            conversation_key="slack:C1",
            now=1001,
        ),
        dict(value=value, action_id="alert.ack", conversation_key="slack:C1", now=1001),
        dict(value=value, action_id="alert.silence", conversation_key="slack:C1", now=1000 + 8 * 24 * 3600),
        dict(value="garbage", action_id="alert.silence", conversation_key="slack:C1", now=1001),
    ]
    for case in refusals:
        with pytest.raises(ButtonRefused):
            verify_button(secret=secret, **case)  # type: ignore[arg-type]
    with pytest.raises(ButtonRefused):
        verify_button(
            secret=b"other" * 8, value=value, action_id="alert.silence", conversation_key="slack:C1", now=1001
        )


def test_a_runbook_is_offered_only_from_the_allow_list_and_an_authenticated_webhook() -> None:
    state = _group(1).model_copy(update={"common_annotations": {"kobot_runbook": "replace-node"}})
    state = state.model_copy(update={"common_labels": {**state.common_labels, "node": "prod-worker-2"}})
    templates = {"replace-node": "replace node {node} on {cluster}"}
    token = SecretStr("t" * 32)

    def rendered(settings: AlertsSettings) -> OutgoingMessage:
        return render_group(
            state,
            sign=_sign,
            max_bytes=WECOM_MARKDOWN_BYTES,
            now=NOW,
            runbook=offered_runbook(state, settings=settings),
        )

    trusted = rendered(AlertsSettings(webhook_bearer_token=token, runbook_commands=templates))
    assert {f.label: f.value for f in trusted.fields}["Runbook command"] == (
        'replace node "prod-worker-2" on "prod"'
    )
    assert "signed-runbook" in [b.value for b in trusted.buttons]
    for settings in (
        AlertsSettings(runbook_commands=templates),  # anyone could have posted the webhook
        AlertsSettings(webhook_bearer_token=token),  # no allow-list: no button at all
        AlertsSettings(webhook_bearer_token=token, runbook_commands={"other": "backup {cluster}"}),
    ):
        message = rendered(settings)
        assert "signed-runbook" not in [b.value for b in message.buttons]
        assert "Runbook command" not in {f.label for f in message.fields}
