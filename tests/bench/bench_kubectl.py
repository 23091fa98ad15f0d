"""Chat `kubectl get pods` on a 1,000-pod cluster at the Kubernetes API peer: milliseconds from the chat
line to kobot's reply (dispatcher, policy, kubeconfig decryption, the API list over a real socket, the table).

Target (issue 12): under 1 s to the chat.
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
from tests.peers.kubernetes import KubernetesApiPeer
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets

PODS = 1000
NODES = 50
ROUNDS = 15
"""Replies timed per command; a few seconds in all."""

COMMANDS = {
    "get pods -n shop (1,000 pods)": "kubectl get pods -n shop on big",
    "get pods -A -o wide (1,000 pods)": "kubectl get pods -A -o wide on big",
    "get pods -l app=app-7 (selector)": "kubectl get pods -n shop -l app=app-7 on big",
}


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="kb-", dir="/tmp") as tmp, KubernetesApiPeer() as peer:
        for node in range(NODES):
            peer.add_node(f"big-worker-{node}")
        for pod in range(PODS):
            peer.add_pod(
                "shop", f"app-{pod}", node=f"big-worker-{pod % NODES}", labels={"app": f"app-{pod % 50}"}
            )
        settings = Settings(data_dir=Path(tmp) / "d", in_process_worker=False)
        runtime = build_runtime(settings)
        try:
            ClusterStore(runtime.redis).save(ClusterRecord(name="big", state=ClusterState.RUNNING))
            kubeconfig = peer.write_kubeconfig(Path(tmp) / "admin.conf").read_bytes()
            ClusterSecrets(redis=runtime.redis, secret=secret_key(settings)).put(
                cluster="big", name=KUBECONFIG_SECRET, value=kubeconfig
            )
            return asyncio.run(_replies(runtime))
        finally:
            runtime.close()


async def _replies(runtime: Runtime) -> dict[str, float]:
    adapter = RecordingAdapter("terminal")
    runtime.adapters["terminal"] = adapter
    dispatcher = Dispatcher(runtime=runtime)
    who = Identity(platform="terminal", user_id="bench")  # the terminal user is admin by default
    where = Conversation(platform="terminal", conversation_id="local")
    figures: dict[str, float] = {}
    for label, text in COMMANDS.items():
        samples: list[float] = []
        for _ in range(ROUNDS + 1):
            before = len(adapter.deliveries)
            started = time.perf_counter()
            await dispatcher.on_message(InboundMessage(identity=who, conversation=where, text=text))
            samples.append((time.perf_counter() - started) * 1000)
            reply = adapter.deliveries[before].message
            assert reply.code and "pods" in reply.title, reply
        samples = samples[1:]  # the first builds the client's pools and the parser's index
        figures[f"{label} p50 ms"] = percentile(samples, 0.5)
        figures[f"{label} p99 ms"] = percentile(samples, 0.99)
    return figures


if __name__ == "__main__":
    print(run())
