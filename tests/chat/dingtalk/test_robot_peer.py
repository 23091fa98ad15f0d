"""Custom robot notifications against the peer: signatures, the 20-a-window budget and the 10-minute
throttle beyond it, sends that return only once posted, coalescing, splitting."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time
from collections.abc import AsyncIterator
from urllib.parse import unquote_plus

import pytest
from redis import Redis

from bot.chat.dingtalk.adapter import DingTalkAdapter
from bot.chat.dingtalk.robot import sign
from kobot.conversations import Conversation, MessageRef
from kobot.errors import DeliveryError
from kobot.messages import MessageKind, OutgoingMessage, Progress
from tests.chat import samples
from tests.chat.sinks import RecordingSink
from tests.peers.dingtalk import ROBOT_THROTTLE_SECONDS, DingTalkPeer
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
    assert ref.extra["via"] == "robot" and ref.extra["robot"] == "ops"
    # a robot cannot edit: an update that would post the same again posts nothing
    assert await adapter.update(ref, samples.ALERT_FIRING) == ref
    assert len(peer.robot_posts[_token(peer)]) == 1
    query = peer.requests_to("/robot/send")[0].query
    assert set(query) == {"access_token", "timestamp", "sign"}


async def test_peer_wrong_robot_secret_is_refused_and_not_counted_delivered(
    peer: DingTalkPeer, redis: Redis
) -> None:
    dingtalk = DingTalkAdapter(settings=settings_for(peer, robot_secret="SECnotthisone"), redis=redis)
    dingtalk.robot_send_wait = 1.0
    try:
        with pytest.raises(DeliveryError) as refused:
            await dingtalk.send(OPS, samples.ALERT_RESOLVED)
        assert refused.value.retry_after is not None
        assert 310000 in peer.robot_refusals[_token(peer)]
        assert peer.robot_posts[_token(peer)] == []
        assert dingtalk.robots["ops"].delivered == 0
        # Withdrawn, not left behind to be posted after the caller gave up and will send it again.
        assert dingtalk.robots["ops"].waiting == 0
    finally:
        await dingtalk.stop()


async def test_peer_burst_of_60_is_paced_within_budget_and_none_lost(
    peer: DingTalkPeer, adapter: DingTalkAdapter
) -> None:
    started = time.monotonic()
    await asyncio.gather(*(adapter.send(OPS, OutgoingMessage(title=f"notice {n}")) for n in range(60)))

    # Every send returned only after its post was accepted.
    assert len(peer.robot_posts[_token(peer)]) == 60
    assert _titles(peer) == [f"notice {n}" for n in range(60)]
    assert peer.robot_refusals[_token(peer)] == []
    # 60 posts at 20 a window cannot all go in fewer than two full windows.
    assert time.monotonic() - started >= 2 * ROBOT_WINDOW_SECONDS


async def test_peer_over_budget_robot_is_throttled_for_10_minutes_and_probed_not_hammered(
    redis: Redis,
) -> None:
    # DingTalk counts 1 a window here while kobot believes 20: the second post throttles the robot.
    with DingTalkPeer(robot_window=ROBOT_WINDOW_SECONDS, robot_budget=1) as peer:
        dingtalk = DingTalkAdapter(settings=settings_for(peer), redis=redis)
        try:
            sends = asyncio.gather(
                *(dingtalk.send(OPS, OutgoingMessage(title=f"alert {n}")) for n in range(3))
            )
            assert await wait_until(lambda: peer.robot_throttled(), timeout=5)
            # A minute later (three kobot windows here) the robot is still throttled.
            await asyncio.sleep(3 * ROBOT_WINDOW_SECONDS)
            assert peer.robot_throttled()
            refusals = len(peer.robot_refusals[_token(peer)])
            assert 1 < refusals <= 5, "one probe per window, not a refusal storm"
            assert _titles(peer) == ["alert 0"]

            while not sends.done():
                if peer.robot_throttled():
                    peer.clock.advance(ROBOT_THROTTLE_SECONDS)
                await asyncio.sleep(0.05)
            await sends
            assert _titles(peer) == [f"alert {n}" for n in range(3)]
        finally:
            await dingtalk.stop()


async def test_peer_send_waits_for_the_real_post_and_a_withdrawn_one_is_never_posted_later(
    redis: Redis,
) -> None:
    # The robot is throttled by another sender: kobot cannot post. The send must not report delivery
    # (the caller's durable outbox would forget it), and what it withdrew must not surface later as
    # a duplicate of the caller's retry.
    with DingTalkPeer(robot_window=ROBOT_WINDOW_SECONDS, robot_budget=1) as peer:
        dingtalk = DingTalkAdapter(settings=settings_for(peer), redis=redis)
        dingtalk.robot_send_wait = 0.5
        try:
            await dingtalk.send(OPS, OutgoingMessage(title="other sender"))
            with pytest.raises(DeliveryError):
                await dingtalk.send(OPS, OutgoingMessage(title="over budget"))  # throttles the robot
            assert peer.robot_throttled()
            with pytest.raises(DeliveryError) as waiting:
                await dingtalk.send(OPS, samples.ALERT_FIRING)
            assert waiting.value.retry_after is not None
            assert dingtalk.robots["ops"].waiting == 0

            peer.clock.advance(ROBOT_THROTTLE_SECONDS)
            await asyncio.sleep(2 * ROBOT_WINDOW_SECONDS)  # long enough for a leftover post to show
            dingtalk.robot_send_wait = 5.0
            await dingtalk.send(OPS, samples.ALERT_FIRING)  # the caller's retry
            await asyncio.sleep(2 * ROBOT_WINDOW_SECONDS)
            titles = _titles(peer)
            assert titles[0] == "other sender"
            assert sum("KubeNodeNotReady" in t for t in titles) == 1
            assert "over budget" not in titles
        finally:
            await dingtalk.stop()


async def test_peer_stop_fails_every_send_still_waiting(
    peer: DingTalkPeer, small_budget: DingTalkAdapter
) -> None:
    sends = [asyncio.ensure_future(small_budget.send(OPS, OutgoingMessage(title=f"n{n}"))) for n in range(50)]
    # Two posts spend the window's budget; the rest wait in the outbox when it stops.
    assert await wait_until(lambda: sum(f.done() for f in sends) >= 2, timeout=5)
    await small_budget.robots["ops"].close()  # what stop() does once its flush time is over

    results = await asyncio.gather(*sends, return_exceptions=True)
    posted = len(peer.robot_posts[_token(peer)])
    delivered = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, DeliveryError)]
    # Exactly the posts DingTalk accepted were reported delivered; every other send was told it failed.
    assert len(delivered) == posted
    assert len(failed) == 50 - posted


async def test_peer_queued_edits_of_one_message_collapse_to_the_latest(
    peer: DingTalkPeer, small_budget: DingTalkAdapter
) -> None:
    first = asyncio.ensure_future(small_budget.send(OPS, OutgoingMessage(title="first")))
    second = asyncio.ensure_future(small_budget.send(OPS, OutgoingMessage(title="second")))
    ref = MessageRef(
        platform="dingtalk",
        conversation_id=OPS.conversation_id,
        message_id="ops-job-42",
        extra={"via": "robot"},
    )
    # Ten edits of one message while the budget is spent: one post, with the latest content.
    edits = [small_budget.update(ref, OutgoingMessage(title=f"job 42 edit {n}")) for n in range(10)]
    await asyncio.gather(first, second, *edits)

    assert _titles(peer) == ["first", "second", "job 42 edit 9"]
    assert small_budget.robots["ops"].coalesced == 9


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


async def test_peer_robot_posts_a_job_only_when_its_step_or_state_changes(
    peer: DingTalkPeer, adapter: DingTalkAdapter
) -> None:
    # A robot cannot edit, so every update is a new post: the running time and the current Ansible task
    # tick on every progress edit and must not make one; a new step or the outcome must.
    def running(step: int, task: str | None, elapsed: float) -> OutgoingMessage:
        progress = Progress(
            step=step, total=3, step_title=f"stage {step}", task=task, elapsed_seconds=elapsed
        )
        return OutgoingMessage(
            kind=MessageKind.PROGRESS, title="create prod", status="running", progress=progress
        )

    ref = await adapter.send(OPS, running(1, "gather facts", 2))
    for elapsed, task in ((9, "gather facts"), (31, "install containerd"), (75, "pull images")):
        ref = await adapter.update(ref, running(1, task, elapsed))
    assert len(peer.robot_posts[_token(peer)]) == 1, "ticks of one step are not news"

    ref = await adapter.update(ref, running(2, "kubeadm init", 80))
    ref = await adapter.update(ref, running(2, "wait for the API", 140))
    final = OutgoingMessage(kind=MessageKind.PROGRESS, title="create prod", status="succeeded in 4m10s")
    ref = await adapter.update(ref, final)

    assert await wait_until(lambda: len(peer.robot_posts[_token(peer)]) == 3)
    texts = [post["markdown"]["text"] for post in peer.robot_posts[_token(peer)]]
    assert "step 1/3" in texts[0] and "step 2/3" in texts[1] and "succeeded in 4m10s" in texts[2]
    # A post shows the time as of when it was made: the first post's running time stays its own.
    assert "2s" in texts[0] and "1m20s" in texts[1]
