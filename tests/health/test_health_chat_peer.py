"""`check cluster prod` / `巡检 prod` end to end: a Slack mention in, kobot checking the Kubernetes API
peer, the health card posted to the Slack peer; the permission it needs, and the schedule commands."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from redis import Redis

from bot.app import create_app
from kobot import defaults
from kobot.clusters import ClusterRecord, ClusterState, ClusterStore
from kobot.settings import Settings
from kobot.store import secret_key
from tests.health.peer import HealthPeer
from tests.peers.slack import PeerMessage, SlackPeer
from tests.support.asgi import in_process
from tests.support.slack import post_mention, running_slack_peer, settings_for
from tests.support.waiting import eventually
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets
from workers.health_schedule import HealthScheduleStore

POLICY = """
version: 1
roles:
  shop-reader:
    commands: ["kubectl:shop", "cluster.*", "health.check"]
bindings:
  - role: operator
    subjects: ["slack:U0ALICE"]
  - role: shop-reader
    subjects: ["slack:U0SHOP"]
  - role: viewer
    subjects: ["*"]
"""


@pytest.fixture
def signing_secret() -> str:
    return secrets.token_hex(16)


@pytest.fixture
def slack() -> Iterator[SlackPeer]:
    with running_slack_peer() as peer:
        yield peer


@pytest.fixture
def kube() -> Iterator[HealthPeer]:
    with HealthPeer(certificate_days=5) as peer:
        peer.add_node("prod-master-1", role="master")
        peer.add_node("prod-worker-1")
        peer.set_ready("prod-worker-1", False)
        peer.add_pod("shop", "api-1", node="prod-master-1")
        peer.add_pod("shop", "db-0", node="prod-master-1", waiting_reason="CrashLoopBackOff", restarts=7)
        peer.add_volume_claim("shop", "data-0", phase="Pending")
        yield peer


@pytest.fixture
async def kobot(
    slack: SlackPeer, signing_secret: str, redis_url: str, redis: Redis, data_dir: Path, kube: HealthPeer
) -> AsyncIterator[httpx.AsyncClient]:
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY)
    settings = Settings(
        policy_file=policy,
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        slack=settings_for(slack, signing_secret),
    )
    ClusterStore(redis).save(ClusterRecord(name="prod", state=ClusterState.RUNNING, version="1.30.2"))
    ClusterSecrets(redis=redis, secret=secret_key(settings)).put(
        cluster="prod", name=KUBECONFIG_SECRET, value=kube.write_kubeconfig(data_dir / "k.conf").read_bytes()
    )
    async with in_process(create_app(settings)) as client:
        yield client


async def ask(kobot: httpx.AsyncClient, slack: SlackPeer, secret: str, text: str, user: str) -> str:
    said = await post_mention(kobot, signing_secret=secret, text=text, user=user)

    def replies() -> list[PeerMessage]:
        return [m for m in slack.posted() if m.thread_ts == said]

    await eventually(replies, what="a reply")
    [reply] = replies()
    return reply.text + json.dumps(reply.blocks, ensure_ascii=False)


async def test_peer_check_cluster_posts_the_summary_card_with_its_findings(
    kobot: httpx.AsyncClient, slack: SlackPeer, signing_secret: str, kube: HealthPeer
) -> None:
    started = time.monotonic()
    reply = await ask(kobot, slack, signing_secret, "check cluster prod", "U0ALICE")
    assert time.monotonic() - started < defaults.HEALTH_CHECK_DEADLINE_SECONDS
    assert "Health of prod: 4 critical, 1 warnings" in reply
    for line in (
        "prod-worker-1: NotReady",
        "shop/db-0: CrashLoopBackOff (restarted 7 times)",
        "shop/data-0: Pending",
        f"API server serving certificate (127.0.0.1:{kube.port}): expires (in 5 days",
    ):
        assert line in reply, line
    assert {call.method for call in kube.requests} == {"GET"}


async def test_peer_the_chinese_form_runs_the_same_check(
    kobot: httpx.AsyncClient, slack: SlackPeer, signing_secret: str
) -> None:
    assert "Health of prod: 4 critical" in await ask(kobot, slack, signing_secret, "巡检 prod", "U0ALICE")


async def test_peer_viewers_and_one_namespace_readers_may_not_check(
    kobot: httpx.AsyncClient, slack: SlackPeer, signing_secret: str, kube: HealthPeer
) -> None:
    viewer = await ask(kobot, slack, signing_secret, "check cluster prod", "U0VIEWER")
    assert "Not allowed" in viewer and "kubectl" in viewer
    shop = await ask(kobot, slack, signing_secret, "check cluster prod", "U0SHOP")
    assert "reads every namespace of prod (permission kubectl:*)" in shop
    assert kube.calls("GET", "/pods") == [], "a refused check never reaches the API server"


async def test_peer_a_schedule_is_set_shown_and_stopped_from_chat(
    kobot: httpx.AsyncClient, slack: SlackPeer, signing_secret: str, redis: Redis
) -> None:
    set_reply = await ask(kobot, slack, signing_secret, "巡检 prod 每天 07:30 时区=Asia/Shanghai", "U0ALICE")
    assert "Health checks of prod scheduled" in set_reply
    [schedule] = HealthScheduleStore(redis).all()
    assert (f"{schedule.at:%H:%M}", schedule.timezone) == ("07:30", "Asia/Shanghai")
    assert f"{schedule.next_run_at:%M}" == "30" and schedule.next_run_at.hour == 23, "07:30 in Shanghai"
    shown = await ask(kobot, slack, signing_secret, "check schedule prod", "U0ALICE")
    assert "prod: every day at 07:30 Asia/Shanghai" in shown
    assert "Scheduled health checks of prod stopped" in await ask(
        kobot, slack, signing_secret, "check prod off", "U0ALICE"
    )
    assert HealthScheduleStore(redis).all() == []
    again = await ask(kobot, slack, signing_secret, "check prod off", "U0ALICE")
    assert "prod has no health-check schedule" in again
    bad = await ask(kobot, slack, signing_secret, "check prod every day at 08:00 tz=Mars/Base", "U0ALICE")
    assert "unknown time zone 'Mars/Base': an IANA name such as UTC, Asia/Shanghai" in bad


async def test_peer_checks_past_the_concurrent_bound_are_answered_busy(
    kobot: httpx.AsyncClient, slack: SlackPeer, signing_secret: str, kube: HealthPeer
) -> None:
    """Each check holds a worker thread until it ends: past the bound the answer is "busy", at once."""
    kube.faults.delay = 0.3
    asked = defaults.HEALTH_CHECKS_CONCURRENT_MAX + 1
    replies = await asyncio.gather(
        *(ask(kobot, slack, signing_secret, "check cluster prod", "U0ALICE") for _ in range(asked))
    )
    busy = [r for r in replies if "busy with" in r]
    assert len(busy) == 1, replies
    assert f"busy with {defaults.HEALTH_CHECKS_CONCURRENT_MAX} health checks already" in busy[0]
    assert "try `check cluster prod` again in a minute" in busy[0]
    assert sum("Health of prod: 4 critical" in r for r in replies) == asked - 1
    kube.faults.delay = 0.0
    assert "Health of prod: 4 critical" in await ask(kobot, slack, signing_secret, "巡检 prod", "U0ALICE")
