"""The node watcher against the Kubernetes API peer (reached by the official client with the cluster's
encrypted kubeconfig): NotReady and Ready again reach the channels that asked, once per change."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.dispatcher import Dispatcher
from bot.node_watch import NodeReadinessWatcher
from bot.runtime import Runtime, build_runtime
from kobot.clusters import ClusterRecord, ClusterState, NodeRecord
from kobot.conversations import Conversation, Identity, InboundMessage
from kobot.settings import Settings
from kobot.store import secret_key
from tests.bot.recording_adapter import RecordingAdapter
from tests.peers.kubernetes import KubernetesApiPeer
from tests.support.dispatching import with_recorded_terminal_and_alerts
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets

OPS = Identity(platform="terminal", user_id="ops")
WATCHERS = Conversation(platform="terminal", conversation_id="watchers")


@pytest.fixture
def runtime(redis_url: str, data_dir: Path) -> Iterator[Runtime]:
    rt = with_recorded_terminal_and_alerts(
        build_runtime(Settings(redis_url=SecretStr(redis_url), data_dir=data_dir, in_process_worker=False))
    )
    yield rt
    rt.close()


@pytest.fixture
def peer() -> Iterator[KubernetesApiPeer]:
    with KubernetesApiPeer() as server:
        yield server


async def test_not_ready_and_ready_again_are_announced_once_each_peer(
    runtime: Runtime, peer: KubernetesApiPeer, data_dir: Path
) -> None:
    runtime.clusters.save(
        ClusterRecord(
            name="prod",
            state=ClusterState.RUNNING,
            nodes=[
                NodeRecord(name=n, role="worker", address="10.0.0.1")
                for n in ("prod-worker-1", "prod-worker-2")
            ],
        )
    )
    kubeconfig = peer.write_kubeconfig(data_dir / "kubeconfig")
    ClusterSecrets(redis=runtime.redis, secret=secret_key(runtime.settings)).put(
        cluster="prod", name=KUBECONFIG_SECRET, value=kubeconfig.read_bytes()
    )
    kubeconfig.unlink()
    for name in ("prod-worker-1", "prod-worker-2"):
        peer.add_node(name)
    adapter = runtime.adapters["terminal"]
    assert isinstance(adapter, RecordingAdapter) and runtime.alerts is not None
    await Dispatcher(runtime=runtime).on_message(
        InboundMessage(identity=OPS, conversation=WATCHERS, text="notify prod node here")
    )
    await runtime.alerts.start()
    watcher = NodeReadinessWatcher(runtime=runtime)
    try:
        assert await watcher.check_once() == [], "healthy nodes seen for the first time are not news"
        peer.set_ready("prod-worker-2", False)
        [down] = await watcher.check_once()
        assert (down.node, down.ready) == ("prod-worker-2", False)
        assert await watcher.check_once() == [], "announced once, not every round"
        peer.set_ready("prod-worker-2", True)
        [up] = await watcher.check_once()
        assert up.ready

        def titles() -> list[str]:
            return [
                d.message.title
                for d in adapter.deliveries
                if d.ref.conversation_id == "watchers" and d.message.title.startswith("prod-worker")
            ]

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(titles()) < 2:
            await asyncio.sleep(0.05)
    finally:
        await runtime.alerts.stop()
    assert titles() == ["prod-worker-2 is NotReady", "prod-worker-2 is Ready again"]
    down_message = next(
        d.message for d in adapter.deliveries if d.message.title == "prod-worker-2 is NotReady"
    )
    assert down_message.code == "replace node prod-worker-2 on prod"


async def test_clusters_without_a_kubeconfig_or_not_running_are_left_alone(runtime: Runtime) -> None:
    runtime.clusters.save(ClusterRecord(name="dev", state=ClusterState.RUNNING))
    runtime.clusters.save(ClusterRecord(name="new", state=ClusterState.CREATING))
    assert await NodeReadinessWatcher(runtime=runtime).check_once() == []
