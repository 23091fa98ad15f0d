"""Custom robot notifications against the peer: signatures, the 20-a-window budget, coalescing, splitting."""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import AsyncIterator
from urllib.parse import unquote_plus

import pytest
from redis import Redis

from bot.chat.dingtalk.adapter import DingTalkAdapter
from bot.chat.dingtalk.robot import sign
from kobot.conversations import Conversation
from kobot.errors import DeliveryError
from kobot.messages import OutgoingMessage
from tests.chat import samples
from tests.chat.sinks import RecordingSink
from tests.peers.dingtalk import DingTalkPeer
from tests.support.dingtalk import ROBOT_WINDOW_SECONDS, settings_for
from tests.support.waiting import wait_until

OPS = Conversation(platform="dingtalk", conversation_id="robot:ops")


def _token(peer: DingTalkPeer) -> str:
    return next(iter(peer.robots))


def _titles(peer: DingTalkPeer) -> list[str]:
    return [post["markdown"]["title"] for post in peer.robot_posts[_token(peer)]]


@pytest.fixture
async def small_budget(
    peer: DingTalkPeer, redis: Redis, sink: RecordingSink
) -> AsyncIterator[DingTalkAdapter]:
    """Two posts per window, so a queue forms at once."""
    dingtalk = DingTalkAdapter(settings=settings_for(peer, budget=2), redis=redis)
    yield dingtalk
    await dingtalk.stop()


def test_signature_matches_an_independent_hmac() -> None:
    # openssl computes base64(HMAC-SHA256(secret, "<ms>\n<secret>")) on its own; kobot must agree.
    secret, timestamp = "SECabc+/=", 1577262236757
    expected = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", secret, "-binary"],
        input=f"{timestamp}\n{secret}".encode(),
        capture_output=True,
        check=True,
    ).stdout
    assert unquote_plus(sign(secret=secret, timestamp_ms=timestamp)) == base64.b64encode(expected).decode()


async def test_peer_notification_is_signed_and_accepted(peer: DingTalkPeer, adapter: DingTalkAdapter) -> None:
    ref = await adapter.send(OPS, samples.ALERT_FIRING)

    assert await wait_until(lambda: len(peer.robot_posts[_token(peer)]) == 1)
    post = peer.robot_posts[_token(peer)][0]
    assert post["msgtype"] == "markdown"
    assert "KubeNodeNotReady" in post["markdown"]["title"]
    assert ref.extra == {"via": "robot", "robot": "ops"}
    query = peer.requests_to("/robot/send")[0].query
    assert set(query) == {"access_token", "timestamp", "sign"}


async def test_peer_wrong_robot_secret_is_refused_and_not_counted_delivered(
    peer: DingTalkPeer, redis: Redis
) -> None:
    dingtalk = DingTalkAdapter(settings=settings_for(peer, robot_secret="SECnotthisone"), redis=redis)
    try:
        await dingtalk.send(OPS, samples.ALERT_RESOLVED)
        assert await wait_until(lambda: 310000 in peer.robot_refusals[_token(peer)])
        assert peer.robot_posts[_token(peer)] == []
        assert dingtalk.robots["ops"].delivered == 0
        assert dingtalk.robots["ops"].waiting == 1
    finally:
        await dingtalk.robots["ops"].close()
        await dingtalk.api.close()


async def test_peer_burst_of_60_is_paced_within_budget_and_none_lost(
    peer: DingTalkPeer, adapter: DingTalkAdapter
) -> None:
    started = time.monotonic()
    for n in range(60):
        await adapter.send(OPS, OutgoingMessage(title=f"notice {n}"))

    assert await wait_until(lambda: len(peer.robot_posts[_token(peer)]) == 60, timeout=15)
    assert _titles(peer) == [f"notice {n}" for n in range(60)]
    assert peer.robot_refusals[_token(peer)] == []
    # 60 posts at 20 a window cannot all go in fewer than two full windows.
    assert time.monotonic() - started >= 2 * ROBOT_WINDOW_SECONDS


async def test_peer_budget_refusal_backs_off_and_retries(redis: Redis, sink: RecordingSink) -> None:
    # DingTalk counts 10 a window here while kobot believes 20: the refusals must be waited out.
    with DingTalkPeer(robot_window=ROBOT_WINDOW_SECONDS, robot_budget=10) as peer:
        dingtalk = DingTalkAdapter(settings=settings_for(peer), redis=redis)
        try:
            for n in range(25):
                await dingtalk.send(OPS, OutgoingMessage(title=f"alert {n}"))
            assert await wait_until(lambda: len(peer.robot_posts[_token(peer)]) == 25, timeout=15)
            assert _titles(peer) == [f"alert {n}" for n in range(25)]
            assert 130101 in peer.robot_refusals[_token(peer)]
        finally:
            await dingtalk.stop()


async def test_peer_queued_edits_of_one_message_collapse_to_the_latest(
    peer: DingTalkPeer, small_budget: DingTalkAdapter
) -> None:
    await small_budget.send(OPS, OutgoingMessage(title="first"))
    await small_budget.send(OPS, OutgoingMessage(title="second"))
    ref = await small_budget.send(OPS, samples.PROGRESS_START)
    for n in range(10):
        ref = await small_budget.update(ref, OutgoingMessage(title=f"job 42 edit {n}"))

    assert await wait_until(lambda: len(peer.robot_posts[_token(peer)]) == 3, timeout=5)
    assert _titles(peer) == ["first", "second", "job 42 edit 9"]
    assert small_budget.robots["ops"].coalesced == 10


async def test_peer_message_over_20000_bytes_is_split_and_accepted(
    peer: DingTalkPeer, adapter: DingTalkAdapter
) -> None:
    body = "\n".join(
        f"node-{n:04d} 节点 NotReady since 5m, kubelet stopped posting status" for n in range(700)
    )
    assert len(body.encode()) > 40_000
    await adapter.send(OPS, OutgoingMessage(title="many nodes down", body=body))

    assert await wait_until(lambda: len(peer.robot_posts[_token(peer)]) >= 3, timeout=5)
    assert peer.robot_refusals[_token(peer)] == []
    titles = _titles(peer)
    total = len(titles)
    assert titles == [f"many nodes down ({i}/{total})" for i in range(1, total + 1)]
    received = "\n".join(post["markdown"]["text"] for post in peer.robot_posts[_token(peer)])
    assert "node-0000" in received and "node-0699" in received
    assert all(len(r.raw) <= 20_000 for r in peer.requests_to("/robot/send"))


async def test_peer_robot_server_error_is_retried(peer: DingTalkPeer, adapter: DingTalkAdapter) -> None:
    peer.fail_next(2, status=502, path="/robot/send")
    await adapter.send(OPS, samples.ALERT_RESOLVED)

    assert await wait_until(lambda: len(peer.robot_posts[_token(peer)]) == 1, timeout=5)
    assert [r.status for r in peer.requests_to("/robot/send")] == [502, 502, 200]


async def test_unknown_robot_is_a_delivery_error(adapter: DingTalkAdapter) -> None:
    with pytest.raises(DeliveryError, match="no DingTalk robot named 'nope'"):
        await adapter.send(Conversation(platform="dingtalk", conversation_id="robot:nope"), samples.HELP)
