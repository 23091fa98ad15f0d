"""kobot's alert router and delivery service under uvicorn, on its own loop, for the alert tests.

`run_kobot` starts only the alert side (receiver, outbox delivery, the given chat adapters) with a
fresh bearer token; kobot as deployed, with the dispatcher and a policy, is `tests/alerts/deployed.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from redis import Redis

from alerts.service import AlertService
from kobot.chat import ChatAdapter
from kobot.settings import Settings
from kobot.settings_alerts import AlertsSettings, RouteTarget
from kobot.store import Store
from tests.peers.recorder import PLATFORM
from tests.support.asgi import serve

T = TypeVar("T")

OPS = RouteTarget(platform=PLATFORM, conversation_id="ops")
"""The default route of the alert tests: the recorder's `ops` conversation."""

CALL_SECONDS = 15.0
"""Longest a coroutine run on the server's loop may take."""


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

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_SECONDS) -> T:
        """Run a coroutine on the server's loop (the service's Redis client lives there)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def post_webhook(self, body: dict[str, Any] | bytes, *, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token if token is not None else self.token}"}
        if isinstance(body, bytes):
            return httpx.post(f"{self.url}/alerts/alertmanager", content=body, headers=headers, timeout=10)
        return httpx.post(f"{self.url}/alerts/alertmanager", json=body, headers=headers, timeout=10)


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
