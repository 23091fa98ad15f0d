"""A full health check (`check cluster big`) of a 50-node cluster at the Kubernetes API peer, served over
TLS: milliseconds from the chat line to the card (dispatcher, policy, kubeconfig decryption, /version,
/readyz, nodes, 1,500 pods, PVCs, the TLS handshake for the serving certificate, the card).

Target (issue 12): under 5 s.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from bot.dispatcher import Dispatcher
from bot.runtime import Runtime, build_runtime
from kobot.clusters import ClusterRecord, ClusterState, ClusterStore
from kobot.conversations import Conversation, Identity, InboundMessage
from kobot.settings import Settings
from kobot.store import secret_key
from tests.bench.figures import percentile
from tests.bot.recording_adapter import RecordingAdapter
from tests.health.peer import HealthPeer
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets

NODES = 50
PODS_PER_NODE = 30
ROUNDS = 10
"""Checks timed; a few seconds in all."""


def run() -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory(prefix="kb-", dir="/tmp") as tmp,
        HealthPeer(certificate_days=90) as peer,
    ):
        for node in range(NODES):
            peer.add_node(f"big-worker-{node}")
            for pod in range(PODS_PER_NODE):
                # a few sick ones, so the card has findings to list
                sick = "CrashLoopBackOff" if pod == 0 and node % 10 == 0 else None
                peer.add_pod("shop", f"app-{node}-{pod}", node=f"big-worker-{node}", waiting_reason=sick)
        peer.set_ready("big-worker-7", False)
        for claim in range(NODES):
            peer.add_volume_claim("shop", f"data-{claim}")
        settings = Settings(data_dir=Path(tmp) / "d", in_process_worker=False)
        runtime = build_runtime(settings)
        try:
            ClusterStore(runtime.redis).save(ClusterRecord(name="big", state=ClusterState.RUNNING))
            kubeconfig = peer.write_kubeconfig(Path(tmp) / "admin.conf").read_bytes()
            ClusterSecrets(redis=runtime.redis, secret=secret_key(settings)).put(
                cluster="big", name=KUBECONFIG_SECRET, value=kubeconfig
            )
            return asyncio.run(_checks(runtime))
        finally:
            runtime.close()


async def _checks(runtime: Runtime) -> dict[str, float]:
    adapter = RecordingAdapter("terminal")
    runtime.adapters["terminal"] = adapter
    dispatcher = Dispatcher(runtime=runtime)
    who = Identity(platform="terminal", user_id="bench")  # the terminal user is admin by default
    where = Conversation(platform="terminal", conversation_id="local")
    samples: list[float] = []
    for _ in range(ROUNDS + 1):
        before = len(adapter.deliveries)
        started = time.perf_counter()
        await dispatcher.on_message(
            InboundMessage(identity=who, conversation=where, text="check cluster big")
        )
        samples.append((time.perf_counter() - started) * 1000)
        card = adapter.deliveries[before].message
        assert card.title == "Health of big: 6 critical, 0 warnings", card
    samples = samples[1:]  # the first builds the client's pools and the parser's index
    return {
        f"check cluster ({NODES} nodes, {NODES * PODS_PER_NODE} pods, TLS) p50 ms": percentile(samples, 0.5),
        f"check cluster ({NODES} nodes, {NODES * PODS_PER_NODE} pods, TLS) p99 ms": percentile(samples, 0.99),
    }


if __name__ == "__main__":
    print(run())
