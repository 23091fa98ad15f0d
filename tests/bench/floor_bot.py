"""The floor for the Slack figures: the least a Slack bot can do, in aiohttp alone.

It checks Slack's v0 signature, acks, and answers every mention in its thread with one
chat.postMessage over a kept-alive session: no store, no replay guard, no Bolt, no parsing or
authorization. Run beside kobot in the same benchmark, through the same Slack peer, on the same
machine, its figures are what kobot's are divided by.

    python -m tests.bench.floor_bot PORT API_URL BOT_TOKEN SIGNING_SECRET
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
from typing import Any

import aiohttp
from aiohttp import web

EVENTS_PATH = "/slack/events"


def build(*, api_url: str, token: str, secret: bytes) -> web.Application:
    tasks: set[asyncio.Task[None]] = set()
    state: dict[str, aiohttp.ClientSession] = {}

    async def open_session(app: web.Application) -> None:
        state["session"] = aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"})

    async def close_session(app: web.Application) -> None:
        await state["session"].close()

    async def reply(event: dict[str, Any]) -> None:
        payload = {"channel": event["channel"], "thread_ts": event["ts"], "text": "you are you"}
        async with state["session"].post(f"{api_url}chat.postMessage", json=payload) as response:
            await response.read()

    async def events(request: web.Request) -> web.Response:
        body = await request.read()
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        expected = "v0=" + hmac.new(secret, f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Slack-Signature", "")):
            return web.Response(status=401)
        event = json.loads(body).get("event", {})
        task = asyncio.create_task(reply(event))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post(EVENTS_PATH, events)
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    return app


if __name__ == "__main__":
    port, api_url, token, secret = sys.argv[1:5]
    web.run_app(
        build(api_url=api_url, token=token, secret=secret.encode()),
        host="127.0.0.1",
        port=int(port),
        print=None,
        access_log=None,
    )
