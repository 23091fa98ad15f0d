"""Run runbook runs only the admin's command templates, never a command an alert author wrote.

Attack: an alert's annotation named `remove node … --break-glass …`; an admin's click ran it without
approval. Now the button exists only for an allowed template, a signed click on any other group is
refused, and a template that would break glass stops the start.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from alerts.models import AlertGroupState, AlertStatus, StoredAlert
from alerts.runbooks import RunbookRefused, runbook_for
from alerts.signing import AlertAction, sign_button
from kobot.clusters import ClusterRecord, ClusterState, NodeRecord
from kobot.errors import SettingsError
from kobot.settings import Settings
from kobot.settings_alerts import AlertsSettings
from tests.alerts.deployed import OPS, buttons, deployed, shown
from tests.peers.slack import SlackPeer
from tests.support.alertmanager import am_alert
from tests.support.waiting import wait_for

ADMIN_POLICY = 'version: 1\nbindings:\n  - role: admin\n    subjects: ["slack:U0BOB"]\n'
"""Bob may break glass: the click must still never do it for him."""

TEMPLATES = {"replace-node": "replace node {node} on {cluster}"}


def test_runbook_runs_only_allowed_templates_and_never_breaks_glass_peer(
    peer: SlackPeer, redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    with deployed(
        peer=peer,
        redis_url=redis_url,
        data_dir=data_dir,
        work_dir=tmp_path,
        policy=ADMIN_POLICY,
        alerts=AlertsSettings(runbook_commands=TEMPLATES),
    ) as kobot:
        kobot.runtime.clusters.save(
            ClusterRecord(
                name="prod",
                state=ClusterState.RUNNING,
                version="1.30.4",
                nodes=[
                    NodeRecord(name="prod-m1", role="master", address="192.0.2.11"),
                    NodeRecord(name="prod-w5", role="worker", address="192.0.2.25"),
                    NodeRecord(name="prod-w6", role="worker", address="192.0.2.26"),
                ],
            )
        )
        kobot.am.post_alerts(
            [
                am_alert(
                    "KubeletDown",
                    instance="prod-w6",
                    node="prod-w6",
                    kobot_command="remove node prod-w6 from prod --break-glass now",
                )
            ]
        )
        hostile = wait_for(peer.posted, what="the alert naming its own command")[0]
        assert "Run runbook" not in buttons(hostile)
        assert "break-glass" not in shown(hostile)

        # A signed Run runbook value for that group (say, from a message rendered before the group
        # changed) is refused at click time, and nothing runs.
        group_id = next(iter(kobot.redis.scan_iter("kobot:alerts:group:*"))).decode().split(":")[3]
        value = sign_button(
            secret=kobot.runtime.secret,
            group_id=group_id,
            action=AlertAction.RUNBOOK,
            conversation_key=f"slack:{OPS.conversation_id}",
        )
        kobot.click(action_id="alert.runbook", value=value, message_ts=hostile.ts)
        wait_for(lambda: any("Alert action refused" in t for t in kobot.texts()), what="refusal")
        actions = {entry.action for entry in kobot.audit()}
        assert "break_glass" not in actions
        assert "job.queued" not in actions
        assert not any("Break-glass" in t for t in kobot.texts())

        kobot.am.post_alerts(
            [am_alert("NodeDown", instance="prod-w5", node="prod-w5", kobot_runbook="replace-node")]
        )
        allowed = wait_for(
            lambda: [m for m in peer.posted() if "NodeDown" in shown(m)], what="the allowed runbook alert"
        )[0]
        assert 'replace node \\"prod-w5\\" on \\"prod\\"' in shown(allowed)
        runbook = buttons(allowed)["Run runbook"]
        kobot.click(action_id=runbook["action_id"], value=runbook["value"], message_ts=allowed.ts)
        # As if Bob typed it: a risky command asks for approval even though Bob may break glass.
        wait_for(lambda: any(e.action == "approval.requested" for e in kobot.audit()), what="approval")
        requested = next(e for e in kobot.audit() if e.action == "approval.requested")
        assert requested.cluster == "prod"
        assert "break_glass" not in {e.action for e in kobot.audit()}
        assert "job.queued" not in {e.action for e in kobot.audit()}


@pytest.mark.parametrize(
    "template",
    [
        "remove node {node} from {cluster} --break-glass now",
        "remove node {node} from {cluster} break_glass=now",
        "remove node {node} from {cluster} breakglass=now",
        "remove node {node} from {cluster} --breakglass=now",
        "remove node {node} from {cluster} 破窗=now",
        "remove node {node} from {cluster} 紧急原因=now",
        "remove node {node} from {cluster} —break-glass now",
    ],
)
def test_a_template_that_breaks_glass_stops_the_start(template: str, redis_url: str, data_dir: Path) -> None:
    from bot.app import create_app

    settings = Settings(
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        in_process_worker=False,
        alerts=AlertsSettings(
            webhook_bearer_token=SecretStr("t" * 32), runbook_commands={"remove-node": template}
        ),
    )
    with pytest.raises(SettingsError, match=r"alerts\.runbook_commands\.remove-node.*break glass"):
        create_app(settings)


def _state(**labels: str) -> AlertGroupState:
    alert = StoredAlert(
        fingerprint="f1",
        status=AlertStatus.FIRING,
        labels={"alertname": "NodeDown", "cluster": "prod", **labels},
        annotations={"kobot_runbook": "replace-node"},
        starts_at="2026-01-01T10:00:00Z",  # type: ignore[arg-type]
    )
    return AlertGroupState(
        group_id="g1",
        group_key="k",
        receiver="kobot",
        status=AlertStatus.FIRING,
        group_labels={"alertname": "NodeDown", "cluster": "prod"},
        alerts=[alert],
    )


@pytest.mark.parametrize(
    "node",
    [
        "prod-w5 --break-glass now",
        "prod-w5 breakglass=now",
        "prod-w5; delete cluster prod",
        'prod-w5" --break-glass "now',
        "{{lookup('pipe','id')}}",
        "Prod-W5",
        "",
    ],
)
def test_label_values_cannot_add_words_to_a_runbook(node: str) -> None:
    with pytest.raises(RunbookRefused):
        runbook_for(_state(node=node), templates=TEMPLATES)


def test_a_label_value_that_spells_an_argument_name_stays_a_value() -> None:
    runbook = runbook_for(_state(node="breakglass"), templates=TEMPLATES)
    assert runbook.command == 'replace node "breakglass" on "prod"'
    from commands.parser import parse

    parsed = parse(runbook.command)
    assert parsed.args["node"] == "breakglass"
    assert not parsed.args.get("break_glass")


@pytest.mark.parametrize(
    "template",
    [
        'replace node "{node}" on {cluster}',
        "replace node {node!r}",
        "backup {cluster:>9}",
        "backup {a.b}",
        "x}",
    ],
)
def test_bad_templates_are_refused_when_settings_load(template: str) -> None:
    with pytest.raises(ValueError, match="runbook command 'rb'"):
        AlertsSettings(runbook_commands={"rb": template})
