"""The real Alertmanager binary, configured to deliver to kobot, and the JSON it speaks.

`run_alertmanager` starts it with `group_wait: 1s` and a webhook receiver that carries a bearer
token; `am_alert` is an alert as Prometheus posts it, `webhook_body` one as Alertmanager sends it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.network import LOOPBACK, free_port
from tests.support.waiting import wait_for

AM_BINARY = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"

READY_SECONDS = 10.0
"""Longest Alertmanager may take to answer /-/ready."""

STOP_SECONDS = 10.0
"""Longest Alertmanager gets to exit after SIGTERM before it is killed."""


@dataclass
class Alertmanager:
    url: str
    process: subprocess.Popen[bytes]

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        response = httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=30)
        assert response.status_code == 200, response.text

    def alerts(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.url}/api/v2/alerts", timeout=10).json())

    def silences(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.url}/api/v2/silences", timeout=10).json())


@contextlib.contextmanager
def run_alertmanager(
    *,
    webhook_url: str,
    token: str,
    work_dir: Path,
    group_by: tuple[str, ...] = ("alertname", "cluster"),
) -> Iterator[Alertmanager]:
    config = {
        "route": {
            "receiver": "kobot",
            "group_by": list(group_by),
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "kobot",
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                    }
                ],
            }
        ],
    }
    with run_alertmanager_with(config=config, work_dir=work_dir) as alertmanager:
        yield alertmanager


@contextlib.contextmanager
def run_alertmanager_with(*, config: dict[str, Any], work_dir: Path) -> Iterator[Alertmanager]:
    """Alertmanager on a free loopback port with exactly `config` (e.g. the one an addon rendered)."""
    port = free_port()
    work_dir.mkdir(parents=True, exist_ok=True)
    config_file = work_dir / "alertmanager.yml"
    fd = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(config, handle)
    url = f"http://{LOOPBACK}:{port}"
    log = (work_dir / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [
            AM_BINARY,
            f"--config.file={config_file}",
            f"--storage.path={work_dir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            f"--web.external-url={url}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=READY_SECONDS, what="alertmanager ready")
        yield Alertmanager(url=url, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


def am_alert(
    name: str, *, cluster: str = "prod", ends_at: str | None = None, **labels: str
) -> dict[str, Any]:
    """An alert as Prometheus posts it to Alertmanager's API."""
    annotations = {"summary": labels.pop("summary", f"{name} on {labels.get('instance', cluster)}")}
    for key in ("runbook_url", "kobot_runbook", "kobot_command"):
        if key in labels:
            annotations[key] = labels.pop(key)
    alert: dict[str, Any] = {
        "labels": {"alertname": name, "cluster": cluster, "severity": "critical", **labels},
        "annotations": annotations,
        "generatorURL": f"http://prometheus.test/graph?g0.expr={name}",
    }
    if ends_at is not None:
        alert["endsAt"] = ends_at
    return alert


def webhook_body(
    *, status: str = "firing", fingerprints: tuple[str, ...] = ("a1",), group: str = "g"
) -> dict[str, Any]:
    """A version-4 body as Alertmanager sends it, for tests that post to kobot directly."""
    alerts = [
        {
            "status": status,
            "labels": {
                "alertname": "KubeNodeNotReady",
                "cluster": "prod",
                "severity": "critical",
                "node": f"n-{fp}",
            },
            "annotations": {"summary": f"node n-{fp} is NotReady"},
            "startsAt": "2026-01-01T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-01-01T10:17:00Z",
            "generatorURL": "http://prometheus.test/graph",
            "fingerprint": fp,
        }
        for fp in fingerprints
    ]
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="KubeNodeNotReady", cluster="prod", g="{group}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "kobot",
        "groupLabels": {"alertname": "KubeNodeNotReady", "cluster": "prod"},
        "commonLabels": {"alertname": "KubeNodeNotReady", "cluster": "prod", "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.test",
        "alerts": alerts,
    }


def dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
