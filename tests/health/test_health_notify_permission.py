"""`notify prod health` posts pod and volume names of every namespace, so it needs what `check cluster`
needs (kubectl:*); a `node` channel hears the node findings of a worse check and nothing else. Through
the real dispatcher and policy, subscriptions in real Valkey."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.subscriptions import ClusterEvent, NotifySubscription, notify_subscriptions_of
from bot.dispatcher import Dispatcher
from bot.runtime import Runtime
from kobot.clusters import ClusterRecord, ClusterState
from kobot.conversations import Conversation, Identity, InboundMessage
from kobot.messages import OutgoingMessage
from kobot.settings_alerts import RouteTarget
from tests.bot.recording_adapter import RecordingAdapter
from tests.support.dispatching import dispatching_runtime

POLICY = """
version: 1
roles:
  shop-ops:
    commands: ["notify", "kubectl:shop"]
bindings:
  - role: operator
    subjects: ["slack:U0ALICE"]
  - role: shop-ops
    subjects: ["slack:U0SHOP"]
"""
ALICE = Identity(platform="slack", user_id="U0ALICE")
SHOP = Identity(platform="slack", user_id="U0SHOP")
ROOM = Conversation(platform="slack", conversation_id="C0SHOP")
TARGET = RouteTarget(platform="slack", conversation_id="C0SHOP")
HEALTH = ClusterEvent.HEALTH_WORSENED.value
NODE_HEALTH = ClusterEvent.NODE_HEALTH_WORSENED.value


@pytest.fixture
def runtime(redis_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    rt = dispatching_runtime(redis_url=redis_url, data_dir=data_dir, policy=POLICY, policy_dir=tmp_path)
    rt.clusters.save(ClusterRecord(name="prod", state=ClusterState.RUNNING))
    yield rt
    rt.close()


async def _say(runtime: Runtime, who: Identity, text: str) -> OutgoingMessage:
    await Dispatcher(runtime=runtime).on_message(InboundMessage(identity=who, conversation=ROOM, text=text))
    adapter = runtime.adapters["slack"]
    assert isinstance(adapter, RecordingAdapter)
    return adapter.deliveries[-1].message


def _subscription(runtime: Runtime) -> NotifySubscription | None:
    found = [s for s in notify_subscriptions_of(runtime.redis, target=TARGET) if s.cluster == "prod"]
    return found[0] if found else None


@pytest.mark.parametrize("words", ["health", "all", "node,health"])
async def test_health_notices_need_every_namespace_read(runtime: Runtime, words: str) -> None:
    refused = await _say(runtime, SHOP, f"notify prod {words}")
    text = refused.to_text()
    assert "health notices name pods and volumes of every namespace of prod (permission kubectl:*)" in text
    assert "`notify prod " in text
    assert _subscription(runtime) is None, "nothing subscribed"


async def test_node_channels_hear_node_findings_only(runtime: Runtime) -> None:
    answer = await _say(runtime, SHOP, "notify prod node")
    assert answer.title == "Notices about prod will be posted here", answer
    subscription = _subscription(runtime)
    assert subscription is not None
    assert subscription.wants(cluster="prod", event=NODE_HEALTH)
    assert not subscription.wants(cluster="prod", event=HEALTH)


async def test_who_may_read_every_namespace_gets_the_whole_health_notice_once(runtime: Runtime) -> None:
    answer = await _say(runtime, ALICE, "notify prod node,health")
    assert answer.title == "Notices about prod will be posted here", answer
    subscription = _subscription(runtime)
    assert subscription is not None and subscription.every_namespace
    assert subscription.wants(cluster="prod", event=HEALTH)
    assert not subscription.wants(cluster="prod", event=NODE_HEALTH), "the whole notice holds them"


def test_a_node_subscription_kept_from_before_hears_node_findings_only() -> None:
    """`node` used to hold health_worsened itself, asked of no one: such a subscription is narrowed."""
    kept = NotifySubscription.model_validate(
        {
            "target": TARGET.model_dump(),
            "cluster": "prod",
            "events": ["node_not_ready", "node_ready", "health_worsened"],
        }
    )
    assert not kept.wants(cluster="prod", event=HEALTH)
    assert kept.wants(cluster="prod", event=NODE_HEALTH)
