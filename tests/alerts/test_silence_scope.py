"""A silence reaches no further than the right that allowed it.

Attack: an admin of `dev-*` only silenced an alert on every cluster. Alertmanager grouped by
`alertname` alone, so the permission check read `cluster=dev-1` from the common labels while the
silence matched `alertname` everywhere. Now the scope label goes into the matchers, and a group that
spans clusters needs the right on every cluster.
"""

from __future__ import annotations

from pathlib import Path

from tests.alerts.deployed import buttons, deployed, shown
from tests.peers.slack import SlackPeer
from tests.support.alertmanager import am_alert
from tests.support.waiting import wait_for

DEV_ADMIN_POLICY = (
    'version: 1\nbindings:\n  - role: admin\n    subjects: ["slack:U0BOB"]\n    clusters: ["dev-*"]\n'
)


def test_dev_admin_silence_matches_only_dev_and_spanning_groups_are_refused_peer(
    peer: SlackPeer, redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    with deployed(
        peer=peer,
        redis_url=redis_url,
        data_dir=data_dir,
        work_dir=tmp_path,
        policy=DEV_ADMIN_POLICY,
        group_by=("alertname",),
    ) as kobot:
        kobot.am.post_alerts([am_alert("HighCPU", cluster="dev-1", instance="dev-1-w1")])
        message = wait_for(peer.posted, what="the dev alert")[0]
        silence = buttons(message)["Silence 1h"]
        kobot.click(action_id=silence["action_id"], value=silence["value"], message_ts=message.ts)
        created = wait_for(kobot.am.silences, what="the silence in Alertmanager")
        matchers = {m["name"]: (m["value"], m["isEqual"], m["isRegex"]) for m in created[0]["matchers"]}
        assert matchers == {"alertname": ("HighCPU", True, False), "cluster": ("dev-1", True, False)}

        kobot.am.post_alerts(
            [
                am_alert("HighCPU", cluster="dev-1", instance="dev-1-w1"),
                am_alert("HighCPU", cluster="prod", instance="prod-w1"),
            ]
        )

        def prod_alert() -> dict[str, object] | None:
            return next((a for a in kobot.am.alerts() if a["labels"]["cluster"] == "prod"), None)

        prod = wait_for(prod_alert, what="the prod alert in Alertmanager")
        assert prod["status"]["silencedBy"] == [], "the dev admin's silence must not reach prod"  # type: ignore[index]

        # A group spanning dev-2 and prod: silencing it needs the right on every cluster.
        kobot.am.post_alerts(
            [
                am_alert("HighMemory", cluster="dev-2", instance="dev-2-w1"),
                am_alert("HighMemory", cluster="prod", instance="prod-w1"),
            ]
        )
        spanning = wait_for(
            lambda: next((m for m in peer.posted() if "HighMemory" in shown(m)), None), what="spanning group"
        )
        assert "unknown cluster" in shown(spanning)
        latest = buttons(spanning)["Silence 4h"]
        kobot.click(action_id=latest["action_id"], value=latest["value"], message_ts=spanning.ts)
        wait_for(lambda: any("Alert action refused" in t for t in kobot.texts()), what="the refusal")
        assert len(kobot.am.silences()) == 1
