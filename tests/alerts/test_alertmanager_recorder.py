"""End to end with the real Alertmanager: alerts posted to its API reach a recording chat platform.

The platform is the loopback recorder of `recorder.py` (hence `recorder` in the names); the same
flows through the real Slack SDK are in test_slack_peer.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alerts import keys
from kobot.audit import AuditEntry
from kobot.conversations import ButtonClick, Conversation, Identity
from tests.peers.recorder import PLATFORM, ChatRecorder
from tests.support.alertmanager import Alertmanager, am_alert
from tests.support.alerts_server import KobotServer
from tests.support.waiting import wait_for

ALICE = Identity(platform=PLATFORM, user_id="U1", display_name="Alice")
OPS_CONVERSATION = Conversation(platform=PLATFORM, conversation_id="ops")


def _button(message: dict[str, Any], label: str) -> dict[str, Any]:
    return next(b for b in message["buttons"] if b["label"] == label)


def _click(kobot: KobotServer, button: dict[str, Any], conversation: Conversation = OPS_CONVERSATION) -> Any:
    """The reply the clicker gets."""
    click = ButtonClick(
        identity=ALICE, conversation=conversation, action_id=button["action_id"], value=button["value"]
    )
    return kobot.call(kobot.service.handle_click(click)).reply


def test_firing_update_and_resolve_edit_one_message_recorder(
    kobot: KobotServer, alertmanager: Alertmanager, recorder: ChatRecorder
) -> None:
    alertmanager.post_alerts(
        [am_alert("KubeNodeNotReady", instance="prod-w2", runbook_url="http://runbooks.test/node-not-ready")]
    )
    first = wait_for(lambda: recorder.posts, what="firing message")[0]
    assert first["conversation"] == "ops"
    assert first["title"] == "[critical] prod · KubeNodeNotReady"
    assert "firing · 1 alert" in first["text"]
    assert "KubeNodeNotReady on prod-w2" in first["text"]
    assert "Runbook: http://runbooks.test/node-not-ready" in first["text"]
    assert "http://prometheus.test/graph?g0.expr=KubeNodeNotReady" in first["text"]
    labels = [b["label"] for b in first["buttons"]]
    assert labels == ["Silence 1h", "Silence 4h", "Silence 24h", "Ack"]

    alertmanager.post_alerts(
        [am_alert("KubeNodeNotReady", instance="prod-w2"), am_alert("KubeNodeNotReady", instance="prod-w3")]
    )
    wait_for(lambda: "firing · 2 alerts" in recorder.latest("m1")["text"], what="update with two alerts")
    assert len(recorder.posts) == 1, "an update edits the message, it does not post a new one"

    now = datetime.now(UTC).isoformat()
    alertmanager.post_alerts(
        [
            am_alert("KubeNodeNotReady", instance="prod-w2", ends_at=now),
            am_alert("KubeNodeNotReady", instance="prod-w3", ends_at=now),
        ]
    )
    resolved = wait_for(
        lambda: (m := recorder.latest("m1"))["title"].startswith("[resolved]") and m, what="resolved edit"
    )
    assert resolved["title"] == "[resolved] prod · KubeNodeNotReady"
    assert "resolved after" in resolved["text"]
    assert resolved["buttons"] == []
    assert len(recorder.posts) == 1


def test_silence_button_creates_silence_in_alertmanager_recorder(
    kobot: KobotServer, alertmanager: Alertmanager, recorder: ChatRecorder, redis: Any
) -> None:
    alertmanager.post_alerts([am_alert("EtcdNoLeader", instance="prod-m1")])
    message = wait_for(lambda: recorder.posts, what="firing message")[0]

    reply = _click(kobot, _button(message, "Silence 1h"))
    assert reply.title == "Silenced for 1h"

    silences = alertmanager.silences()
    assert len(silences) == 1
    silence = silences[0]
    assert silence["createdBy"] == "Alice"
    assert silence["status"]["state"] == "active"
    matchers = {m["name"]: m["value"] for m in silence["matchers"]}
    assert matchers == {"alertname": "EtcdNoLeader", "cluster": "prod"}
    assert "EtcdNoLeader" in silence["comment"]

    def suppressed() -> bool:
        return any(silence["id"] in a["status"]["silencedBy"] for a in alertmanager.alerts())

    wait_for(suppressed, what="alert silenced in Alertmanager")
    wait_for(lambda: "Silenced: by Alice" in recorder.latest("m1")["text"], what="message shows the silence")
    entries = [AuditEntry.model_validate_json(fields[b"e"]) for _, fields in redis.xrange("kobot:audit")]
    assert any("silence 1h" in e.detail["what"] and e.actor == "recorder:U1" for e in entries), entries


def test_ack_shows_who_took_it_and_refuses_forged_or_moved_buttons_recorder(
    kobot: KobotServer, alertmanager: Alertmanager, recorder: ChatRecorder
) -> None:
    alertmanager.post_alerts([am_alert("KubeletDown", instance="prod-w5")])
    message = wait_for(lambda: recorder.posts, what="firing message")[0]
    ack = _button(message, "Ack")

    forged = dict(ack, value=ack["value"][:-1] + ("0" if ack["value"][-1] != "0" else "1"))
    assert _click(kobot, forged).title == "Alert action refused"
    elsewhere = Conversation(platform=PLATFORM, conversation_id="other")
    assert "conversation" in _click(kobot, ack, elsewhere).body
    relabelled = dict(ack, action_id="alert.silence")
    assert _click(kobot, relabelled).title == "Alert action refused"

    assert _click(kobot, ack).title == "Acked by Alice"
    wait_for(lambda: "Acked by: Alice" in recorder.latest("m1")["text"], what="ack on the message")
    assert "Ack" not in [b["label"] for b in recorder.latest("m1")["buttons"]]
    assert _click(kobot, ack).title == "Already acked by Alice"


def test_chat_outage_delays_but_loses_nothing_recorder(
    kobot: KobotServer, alertmanager: Alertmanager, recorder: ChatRecorder, redis: Any
) -> None:
    """A ~4 s outage (shortened from minutes): entries wait in the outbox, then the latest state is shown."""
    recorder.down = True
    alertmanager.post_alerts([am_alert("NodeDiskFull", instance="prod-w1")])
    wait_for(lambda: recorder.refused >= 2, what="refused deliveries")
    alertmanager.post_alerts(
        [am_alert("NodeDiskFull", instance="prod-w1"), am_alert("NodeDiskFull", instance="prod-w4")]
    )
    wait_for(lambda: recorder.refused >= 3, what="more refused deliveries")
    assert redis.zcard(keys.OUTBOX) == 1
    assert recorder.posts == []
    recorder.down = False
    posted = wait_for(lambda: recorder.posts, what="delivery after the outage")
    wait_for(
        lambda: "firing · 2 alerts" in recorder.latest(posted[0]["message_id"])["text"], what="latest state"
    )
    wait_for(lambda: redis.zcard(keys.OUTBOX) == 0, what="empty outbox")
    assert len(recorder.posts) == 1


def test_storm_of_500_alerts_becomes_a_few_messages_within_limits_recorder(
    kobot: KobotServer, alertmanager: Alertmanager, recorder: ChatRecorder, redis: Any
) -> None:
    names = ["KubePodCrashLooping", "KubeNodeNotReady", "TargetDown", "NodeFilesystemFull", "KubeJobFailed"]
    storm = [
        am_alert(names[i % 5], instance=f"prod-w{i}", summary=f"{names[i % 5]} on prod-w{i} " + "x" * 60)
        for i in range(500)
    ]
    alertmanager.post_alerts(storm)

    def settled() -> bool:
        texts = {m["title"]: m["text"] for m in recorder.messages()}
        return (
            len(texts) == 5
            and all("100 alerts" in t for t in texts.values())
            and redis.zcard(keys.OUTBOX) == 0
        )

    wait_for(settled, timeout=30, what="five group messages with 100 alerts each")
    assert len(recorder.posts) == 5
    assert len(recorder.messages()) <= 15, "edits coalesce: the latest state of a group wins"
    for message in recorder.messages():
        assert len(message["text"].encode()) <= 4096
    final = [recorder.latest(p["message_id"]) for p in recorder.posts]
    assert all("+" in m["text"] and "more alerts" in m["text"] for m in final)
