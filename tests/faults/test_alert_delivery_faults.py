"""Alert delivery under faults, with real processes: `kobot serve` (a subprocess), a real Valkey (AOF)
and the Slack Web API peer answering slowly, as a loaded Slack does (tests/support/alert_storm.py).

Each test posts a storm of alert groups to the webhook, breaks something while deliveries are in
flight (kill -9 of kobot, kill -9 of the store, Slack answering 429 and 500), resolves every group,
and then asserts what a team sees in the channel: every group has exactly one message (0 lost, 0
duplicate), and every message shows its final state, "[resolved]" (0 stale).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.loopback import Fault
from tests.support.alert_storm import (
    GROUPS,
    KILL_LATENCY_SECONDS,
    LOG_NAME,
    SETTLE_SECONDS,
    SLACK_LATENCY_SECONDS,
    Stack,
    alert_stack,
    all_resolved,
    assert_one_current_message_per_group,
)
from tests.support.waiting import wait_for


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with alert_stack(tmp_path) as running:
        yield running


def test_kobot_killed_mid_storm_loses_no_group_and_leaves_no_duplicate_or_stale_message(
    stack: Stack,
) -> None:
    stack.peer.faults.delay = KILL_LATENCY_SECONDS
    stack.start_serve()
    stack.storm("firing")
    wait_for(lambda: stack.peer.posted(), what="the first posts of the storm")
    time.sleep(KILL_LATENCY_SECONDS / 2)  # the next round's posts are on their way, unanswered
    stack.kill_serve()
    answered = len(stack.peer.posted())
    assert answered < GROUPS, "the kill landed mid-storm"
    wait_for(
        lambda: len(stack.peer.posted()) > answered,
        timeout=KILL_LATENCY_SECONDS * 3,
        what="Slack keeping posts whose answer kobot never read",
    )
    stack.peer.faults.delay = SLACK_LATENCY_SECONDS
    stack.start_serve()
    # the resolves reach the new process while (or soon after) the dead one's claims are held
    stack.storm("resolved")
    wait_for(lambda: all_resolved(stack), timeout=SETTLE_SECONDS, what="every group resolved")
    assert "of a stopped kobot process taken back" in stack.processes.log(LOG_NAME)
    assert_one_current_message_per_group(stack)


def test_store_killed_mid_storm_loses_no_group_and_leaves_no_duplicate_or_stale_message(
    stack: Stack,
) -> None:
    stack.start_serve()
    stack.storm("firing")
    wait_for(lambda: len(stack.peer.posted()) >= 3, what="the first posts of the storm")
    stack.kill_valkey()  # posts in flight now find no store to record their ts in
    time.sleep(SLACK_LATENCY_SECONDS * 3)
    stack.start_valkey()
    stack.storm("resolved")
    wait_for(lambda: all_resolved(stack), timeout=SETTLE_SECONDS, what="every group resolved")
    assert_one_current_message_per_group(stack)


def test_slack_answering_429_and_500_delays_but_neither_loses_nor_duplicates_peer(
    stack: Stack,
) -> None:
    stack.start_serve()
    stack.peer.rate_limit(seconds=2.0, retry_after=1)
    stack.peer.faults.add(Fault(status=500, times=12), path="/api/chat.postMessage")
    stack.peer.faults.add(Fault(status=500, times=6), path="/api/chat.update")
    stack.storm("firing")
    wait_for(
        lambda: len(stack.peer.posted()) >= GROUPS // 2, timeout=SETTLE_SECONDS, what="posts past the 429s"
    )
    stack.storm("resolved")
    wait_for(lambda: all_resolved(stack), timeout=SETTLE_SECONDS, what="every group resolved")
    statuses = Counter(call.status for call in stack.peer.requests.all())
    assert statuses[429] and statuses[500], f"the faults were met: {statuses}"
    assert_one_current_message_per_group(stack)
