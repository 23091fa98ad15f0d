"""Scheduled health checks against the API peer, through the message center to a recording adapter:
a schedule set from chat survives a restart, what got worse is posted once to `health`/`node` channels,
and certificate-expiry notices go to `certificate` channels once per threshold."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from redis import Redis

from alerts.subscriptions import ClusterEvent
from bot.dispatcher import Dispatcher
from bot.runtime import Runtime, build_runtime
from kobot import keys
from kobot.clusters import ClusterRecord, ClusterState
from kobot.conversations import Conversation, Identity, InboundMessage
from kobot.messages import OutgoingMessage
from kobot.settings import Settings
from kobot.store import synced
from tests.bot.recording_adapter import RecordingAdapter
from tests.health.peer import HealthPeer
from tests.support.dispatching import with_recorded_terminal_and_alerts
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets
from workers.health_certs import CertificateSeen
from workers.health_schedule import (
    CERT_EXPIRY_EVENT,
    HEALTH_WORSENED_EVENT,
    HealthCheckSchedule,
    HealthCheckScheduler,
    HealthScheduleStore,
    claim_expiry_notices,
    expiry_notices_due,
)

OPS = Identity(platform="terminal", user_id="ops")
HEALTH = Conversation(platform="terminal", conversation_id="health-room")
NODES = Conversation(platform="terminal", conversation_id="node-room")
CERTS = Conversation(platform="terminal", conversation_id="cert-room")
JOBS = Conversation(platform="terminal", conversation_id="job-room")
DELIVERY_SECONDS = 10.0
"""The message center delivers within milliseconds; this bounds a test that waits for it."""


def build(redis_url: str, data_dir: Path) -> Runtime:
    rt = with_recorded_terminal_and_alerts(
        build_runtime(Settings(redis_url=SecretStr(redis_url), data_dir=data_dir, in_process_worker=False))
    )
    return rt


async def hourly_checks_of_prod_with_a_worker_not_ready(
    rt: Runtime, peer: HealthPeer, data_dir: Path
) -> HealthCheckSchedule:
    """prod on the peer, its health notices and hourly checks set from chat, prod-worker-2 NotReady."""
    add_cluster(rt, peer, data_dir)
    await say(rt, HEALTH, "notify prod health")
    await say(rt, HEALTH, "check prod every hour at 00:00")
    [schedule] = HealthScheduleStore(rt.redis).all()
    peer.set_ready("prod-worker-2", False)
    return schedule


def scheduler(rt: Runtime) -> HealthCheckScheduler:
    assert rt.alerts is not None
    return HealthCheckScheduler(
        redis=rt.redis, secrets=ClusterSecrets(redis=rt.redis, secret=rt.secret), publisher=rt.alerts
    )


async def say(rt: Runtime, where: Conversation, text: str) -> OutgoingMessage:
    adapter = rt.adapters["terminal"]
    assert isinstance(adapter, RecordingAdapter)
    before = len(adapter.deliveries)
    await Dispatcher(runtime=rt).on_message(InboundMessage(identity=OPS, conversation=where, text=text))
    return adapter.deliveries[before].message


async def posted(rt: Runtime, where: Conversation, *, at_least: int) -> list[str]:
    adapter = rt.adapters["terminal"]
    assert isinstance(adapter, RecordingAdapter)

    def titles() -> list[str]:
        return [
            d.message.title
            for d in adapter.deliveries
            if d.ref.conversation_id == where.conversation_id and d.message.kind.value == "notice"
        ]

    deadline = time.monotonic() + DELIVERY_SECONDS
    while time.monotonic() < deadline and len(titles()) < at_least:
        await asyncio.sleep(0.05)
    return titles()


def add_cluster(rt: Runtime, peer: HealthPeer, data_dir: Path) -> None:
    rt.clusters.save(ClusterRecord(name="prod", state=ClusterState.RUNNING))
    ClusterSecrets(redis=rt.redis, secret=rt.secret).put(
        cluster="prod", name=KUBECONFIG_SECRET, value=peer.write_kubeconfig(data_dir / "k.conf").read_bytes()
    )


@pytest.fixture
def peer() -> Iterator[HealthPeer]:
    with HealthPeer() as server:
        server.add_node("prod-worker-1")
        server.add_node("prod-worker-2")
        yield server


def test_the_events_are_the_message_centers() -> None:
    assert ClusterEvent.HEALTH_WORSENED.value == HEALTH_WORSENED_EVENT
    assert ClusterEvent.CERT_EXPIRY_NEAR.value == CERT_EXPIRY_EVENT


async def test_peer_a_schedule_survives_a_restart_and_only_worsening_is_posted_once(
    redis_url: str, data_dir: Path, peer: HealthPeer
) -> None:
    first = build(redis_url, data_dir)
    add_cluster(first, peer, data_dir)
    answer = await say(first, HEALTH, "check prod every day at 08:00")
    assert answer.title == "Health checks of prod scheduled", answer
    await say(first, HEALTH, "notify prod health")
    await say(first, NODES, "notify prod node")
    await say(first, JOBS, "notify prod job")
    [schedule] = HealthScheduleStore(first.redis).all()
    assert (schedule.every, f"{schedule.at:%H:%M}", schedule.timezone) == ("day", "08:00", "UTC")
    assert first.alerts is not None
    await first.alerts.start()
    try:
        due = schedule.next_run_at + timedelta(seconds=1)
        peer.set_ready("prod-worker-2", False)
        [report] = await scheduler(first).run_once(due)
        assert [f.problem for f in report.findings] == ["NotReady"]
        assert await scheduler(first).run_once(due) == [], "one run per slot"
        assert await posted(first, HEALTH, at_least=1) == [
            "Health of prod got worse: 1 new or worse findings"
        ]
        assert await posted(first, NODES, at_least=1) == [
            "Nodes of prod got worse: 1 new or worse findings"
        ], "node channels hear the node findings, once (not the whole notice as well)"
    finally:
        await first.alerts.stop()
        first.close()

    # a restart: new processes, the same store
    second = build(redis_url, data_dir)
    assert second.alerts is not None
    await second.alerts.start()
    try:
        [kept] = HealthScheduleStore(second.redis).all()
        assert kept.next_run_at == schedule.next_run_at + timedelta(days=1), "moved on, and kept"
        again = kept.next_run_at + timedelta(seconds=1)
        [same] = await scheduler(second).run_once(again)
        assert [f.problem for f in same.findings] == ["NotReady"]
        peer.add_pod("shop", "db-0", node="prod-worker-1", waiting_reason="CrashLoopBackOff", restarts=3)
        [worse] = await scheduler(second).run_once(again + timedelta(days=1))
        assert len(worse.findings) == 2
        titles = await posted(second, HEALTH, at_least=1)
        assert titles == ["Health of prod got worse: 1 new or worse findings"], "the same state is not news"
        assert await posted(second, NODES, at_least=0) == [], "a pod finding is not for node channels"
        assert await posted(second, JOBS, at_least=0) == [], "delivered with the others, or never"
        adapter = second.adapters["terminal"]
        assert isinstance(adapter, RecordingAdapter)
        [notice] = [d.message for d in adapter.deliveries if d.ref.conversation_id == "health-room"]
        assert notice.body == "✖ pods · shop/db-0: CrashLoopBackOff (restarted 3 times)"
        assert notice.footer == "The whole report: `check cluster prod`"
    finally:
        await second.alerts.stop()
        second.close()


async def test_peer_an_api_server_that_missed_one_round_does_not_make_known_problems_news_again(
    redis_url: str, data_dir: Path, peer: HealthPeer
) -> None:
    rt = build(redis_url, data_dir)
    assert rt.alerts is not None
    schedule = await hourly_checks_of_prod_with_a_worker_not_ready(rt, peer, data_dir)
    slot = schedule.next_run_at + timedelta(seconds=1)
    await rt.alerts.start()
    try:
        [first] = await scheduler(rt).run_once(slot)
        peer.fail_next(1, status=503, path="/version")
        [down] = await scheduler(rt).run_once(slot + timedelta(hours=1))
        assert [(f.subject, f.problem) for f in down.findings] == [("API server", "unreachable")]
        [back] = await scheduler(rt).run_once(slot + timedelta(hours=2))
        assert [f.problem for f in back.findings] == [f.problem for f in first.findings] == ["NotReady"]
        titles = await posted(rt, HEALTH, at_least=2)
    finally:
        await rt.alerts.stop()
    adapter = rt.adapters["terminal"]
    assert isinstance(adapter, RecordingAdapter)
    bodies = [d.message.body for d in adapter.deliveries if d.ref.conversation_id == "health-room"]
    assert len(titles) == 2 and bodies[-2:] == [
        "✖ nodes · prod-worker-2: NotReady (KubeletNotReady)",
        "✖ control plane · API server: unreachable (the API server of prod answered (503): injected failure)",
    ]
    rt.close()


async def test_peer_certificate_expiry_is_posted_once_per_threshold(redis_url: str, data_dir: Path) -> None:
    rt = build(redis_url, data_dir)
    assert rt.alerts is not None
    with HealthPeer(certificate_days=20) as peer:
        peer.add_node("prod-worker-1")
        add_cluster(rt, peer, data_dir)
        await say(rt, CERTS, "notify prod certificate")
        await say(rt, HEALTH, "notify prod health")
        await rt.alerts.start()
        try:
            # no schedule: certificates are still looked at, every few hours
            assert await scheduler(rt).run_once() == []
            assert await scheduler(rt).run_once() == [], "looked at a moment ago: not again yet"
            titles = await posted(rt, CERTS, at_least=2)
        finally:
            await rt.alerts.stop()
    # the serving certificate and the kubeconfig's CA (the same self-signed one here)
    assert titles == ["A certificate of prod expires in 20 days"] * 2
    assert await posted(rt, HEALTH, at_least=0) == [], "expiry goes to certificate channels"
    sent = {m.decode() for m in synced(rt.redis.smembers(keys.cert_notices_sent("prod")))}
    assert {m.rsplit("|", 1)[1] for m in sent} == {"30"}, "20 days left: only the 30-day threshold passed"
    rt.close()


async def test_peer_a_certificate_first_seen_at_5_days_gets_one_notice_and_then_none(
    redis_url: str, data_dir: Path
) -> None:
    rt = build(redis_url, data_dir)
    assert rt.alerts is not None
    with HealthPeer(certificate_days=5) as peer:
        peer.add_node("prod-worker-1")
        add_cluster(rt, peer, data_dir)
        await say(rt, CERTS, "notify prod certificate")
        await say(rt, CERTS, "check prod every hour at 00:00")
        [schedule] = HealthScheduleStore(rt.redis).all()
        await rt.alerts.start()
        try:
            first = schedule.next_run_at + timedelta(seconds=1)
            [report] = await scheduler(rt).run_once(first)
            assert {f.problem for f in report.findings} == {"expires"}
            await scheduler(rt).run_once(first + timedelta(hours=1))
            titles = await posted(rt, CERTS, at_least=2)
        finally:
            await rt.alerts.stop()
    assert titles == ["A certificate of prod expires in 5 days"] * 2, "one per certificate, not per threshold"
    later = datetime.now(UTC) + timedelta(days=1)
    assert expiry_notices_due(rt.redis, cluster="prod", certificates=report.certificates, now=later) == [], (
        "every threshold it is past is marked sent"
    )
    rt.close()


async def test_clusters_not_running_or_without_a_kubeconfig_are_left_alone(
    redis_url: str, data_dir: Path
) -> None:
    rt = build(redis_url, data_dir)
    rt.clusters.save(ClusterRecord(name="dev", state=ClusterState.RUNNING))
    rt.clusters.save(ClusterRecord(name="new", state=ClusterState.CREATING))
    await say(rt, HEALTH, "check dev every hour at 00:00")
    assert await scheduler(rt).run_once(datetime.now(UTC) + timedelta(hours=2)) == []
    rt.close()


class ThreadNotingRedis(Redis):
    """The real client, noting the thread of every command it sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threads: set[int] = set()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.threads.add(threading.get_ident())
        return super().execute_command(*args, **options)


async def test_peer_a_round_sends_no_redis_command_from_the_event_loop(
    redis_url: str, data_dir: Path, peer: HealthPeer
) -> None:
    """The client is synchronous: a command sent from the loop stalls every chat for its round trip."""
    rt = build(redis_url, data_dir)
    assert rt.alerts is not None
    schedule = await hourly_checks_of_prod_with_a_worker_not_ready(rt, peer, data_dir)
    noting = ThreadNotingRedis.from_url(redis_url)
    rounds = HealthCheckScheduler(
        redis=noting, secrets=ClusterSecrets(redis=noting, secret=rt.secret), publisher=rt.alerts
    )
    await rt.alerts.start()
    try:
        [report] = await rounds.run_once(schedule.next_run_at + timedelta(seconds=1))
        assert [f.problem for f in report.findings] == ["NotReady"]
        assert await posted(rt, HEALTH, at_least=1) == ["Health of prod got worse: 1 new or worse findings"]
    finally:
        await rt.alerts.stop()
        noting.close()
        rt.close()
    assert noting.threads, "the round used the client"
    assert threading.get_ident() not in noting.threads
    with Redis.from_url(redis_url) as client:
        assert synced(client.hgetall(keys.health_findings("prod"))), "remembered once posted"


def test_two_processes_seeing_the_same_expiry_post_it_once(redis_url: str, redis: Redis) -> None:
    """The marks are claimed with SADD before posting, so only the process that added them posts."""
    other = Redis.from_url(redis_url)
    now = datetime.now(UTC)
    expiring = CertificateSeen(
        name="API server serving certificate", subject="CN=x", not_after=now + timedelta(days=5)
    )
    try:
        first = claim_expiry_notices(redis, cluster="prod", certificates=[expiring], now=now)
        second = claim_expiry_notices(other, cluster="prod", certificates=[expiring], now=now)
    finally:
        other.close()
    assert (first, second) == ([expiring], [])
    later = now + timedelta(days=3)
    assert claim_expiry_notices(redis, cluster="prod", certificates=[expiring], now=later) == [], (
        "every threshold it was past is claimed with the first notice"
    )
