"""Alert test fixtures: kobot's receiver under uvicorn, the real Alertmanager, and a recording chat.

The order matters: kobot's server starts first (Alertmanager's config names its port), then
Alertmanager with `group_wait: 1s` and a webhook receiver pointing at kobot with a bearer token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI
from pydantic import SecretStr
from redis import Redis

from alerts.service import AlertService
from kobot.chat import ChatAdapter
from kobot.settings import Settings
from kobot.settings_alerts import AlertsSettings, RouteTarget
from kobot.store import Store
from tests.alerts.recorder import PLATFORM, ChatRecorder, RecorderAdapter, start_recorder

T = TypeVar("T")
WAIT_SECONDS = 20.0
AM_BINARY = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
OPS = RouteTarget(platform=PLATFORM, conversation_id="ops")


@dataclass
class AlertsRuntime:
    """The part of `bot.runtime.Runtime` the alert service reads: settings, store, secret, adapters."""

    settings: Settings
    store: Store
    secret: bytes
    adapters: dict[str, ChatAdapter] = field(default_factory=dict)
    redis: Redis | None = None
    """The synchronous client command handlers use."""


@dataclass
class KobotServer:
    """kobot's alert router and service running under uvicorn in a thread of its own."""

    url: str
    service: AlertService
    loop: asyncio.AbstractEventLoop
    token: str
    runtime: AlertsRuntime

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 15) -> T:
        """Run a coroutine on the server's loop (the service's Redis client lives there)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def post_webhook(self, body: dict[str, Any] | bytes, *, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token if token is not None else self.token}"}
        if isinstance(body, bytes):
            return httpx.post(f"{self.url}/alerts/alertmanager", content=body, headers=headers, timeout=10)
        return httpx.post(f"{self.url}/alerts/alertmanager", json=body, headers=headers, timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], T | None], *, timeout: float = WAIT_SECONDS, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def run_kobot(
    *,
    redis_url: str,
    adapters: dict[str, ChatAdapter],
    alerts: AlertsSettings,
    data_dir: Path,
    start_delivery: bool = True,
) -> Iterator[KobotServer]:
    token = secrets.token_urlsafe(24)
    alerts = alerts.model_copy(update={"webhook_bearer_token": SecretStr(token)})
    settings = Settings(redis_url=SecretStr(redis_url), data_dir=data_dir, alerts=alerts)
    runtime = AlertsRuntime(settings=settings, store=Store(url=redis_url), secret=secrets.token_bytes(32))
    runtime.adapters.update(adapters)
    service = AlertService(
        settings=settings, store_url=redis_url, adapters=runtime.adapters, secret=runtime.secret
    )
    loops: list[asyncio.AbstractEventLoop] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        loops.append(asyncio.get_running_loop())
        if start_delivery:
            await service.start()
        yield
        await service.stop()
        for adapter in adapters.values():
            await adapter.stop()

    app = FastAPI(lifespan=lifespan)
    app.include_router(service.router())
    with serve(app) as url:
        yield KobotServer(url=url, service=service, loop=loops[0], token=token, runtime=runtime)


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run `app` (lifespan included) under uvicorn on a free loopback port in a thread; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, what="uvicorn start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


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
    port = free_port()
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
    work_dir.mkdir(parents=True, exist_ok=True)
    config_file = work_dir / "alertmanager.yml"
    fd = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(config, handle)
    url = f"http://127.0.0.1:{port}"
    log = (work_dir / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [
            AM_BINARY,
            f"--config.file={config_file}",
            f"--storage.path={work_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
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

        wait_for(ready, timeout=10, what="alertmanager ready")
        yield Alertmanager(url=url, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


@pytest.fixture
def recorder() -> Iterator[ChatRecorder]:
    rec = start_recorder()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


@pytest.fixture
def kobot(redis_url: str, recorder: ChatRecorder, data_dir: Path) -> Iterator[KobotServer]:
    """Default routes: everything to the recorder's `ops` conversation (4,096-byte messages, like WeCom)."""
    adapters: dict[str, ChatAdapter] = {PLATFORM: RecorderAdapter(url=recorder.url, max_message_bytes=4096)}
    settings = AlertsSettings(default_targets=[OPS])
    with run_kobot(redis_url=redis_url, adapters=adapters, alerts=settings, data_dir=data_dir) as server:
        yield server


@pytest.fixture
def alertmanager(kobot: KobotServer, tmp_path: Path) -> Iterator[Alertmanager]:
    with run_alertmanager(
        webhook_url=f"{kobot.url}/alerts/alertmanager", token=kobot.token, work_dir=tmp_path / "am"
    ) as am:
        yield am


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
