"""The node watcher: kobot watches the nodes of every running cluster it holds a kubeconfig for, and
tells the channels that asked (`notify <cluster> node here`) when one stops or starts being Ready.

A NotReady notice names the node and the command that replaces it (`replace node N on C`), which then
goes through permissions and approval like any typed command; on a cluster with autoheal on
(`autoheal C on`), `bot.autoheal` replaces a worker NotReady for too long itself. The last state
seen per node is kept in Redis, so a restart does not announce every node again, and a flapping node
is announced once per change.
(kobot's own health, `/healthz`, is in `bot.api`.)
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bot.runtime import Runtime
from kobot import keys
from kobot.background import BackgroundTask, every
from kobot.clusters import ClusterState
from kobot.errors import KobotError
from kobot.messages import Field, MessageKind, OutgoingMessage, Tone
from kobot.store import secret_key, synced

if TYPE_CHECKING:
    from bot.autoheal import AutohealOutcome

log = logging.getLogger(__name__)

NODE_WATCH_INTERVAL_SECONDS = 30.0
"""How often every running cluster's nodes are looked at; kubelet marks a node NotReady after 40 s."""


@dataclass(frozen=True)
class NodeChange:
    """A node that became NotReady (`ready` False) or Ready again since the last look."""

    cluster: str
    node: str
    ready: bool


class NodeHealer(Protocol):
    """What replaces a worker NotReady for too long (`bot.autoheal.Autoheal`, or in a supervised process
    `bot.dispatcher_soon.AutohealSoon`, which builds it after the start)."""

    async def consider(self, cluster: str, ready: dict[str, bool]) -> AutohealOutcome: ...


class NodeReadinessWatcher:
    """Looks at every running cluster's nodes each interval and announces readiness changes."""

    def __init__(
        self,
        *,
        runtime: Runtime,
        interval: float = NODE_WATCH_INTERVAL_SECONDS,
        autoheal: NodeHealer | None = None,
    ) -> None:
        self._runtime = runtime
        self._interval = interval
        self._autoheal = autoheal
        self.autoheal_outcomes: dict[str, AutohealOutcome] = {}
        """What autoheal did in the last round, per cluster with autoheal on."""
        self._task = BackgroundTask("node-watch")

    async def start(self) -> None:
        self._task.start(every(self._interval, self.check_once, log=log, what="node readiness check"))

    async def stop(self) -> None:
        await self._task.stop()

    async def check_once(self) -> list[NodeChange]:
        """Look at every running cluster once; announce and return what changed since last time."""
        changes: list[NodeChange] = []
        for record in self._runtime.clusters.all():
            if record.state is not ClusterState.RUNNING:
                continue
            seen = await asyncio.to_thread(self._readiness, record.name)
            if seen is None:
                continue
            found = self._changes(record.name, seen)
            for change in found:
                await self._announce(change)
            # remembered only once announced: a failed announcement is tried again next round
            self._remember(record.name, seen)
            changes += found
            if self._autoheal is not None:
                self.autoheal_outcomes[record.name] = await self._autoheal.consider(record.name, seen)
        return changes

    def _readiness(self, cluster: str) -> dict[str, bool] | None:
        # on the round's thread: the Kubernetes client and the secrets' cipher are nothing serve's start
        # needs (a round comes at once, so here, not later, is where they load)
        from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets
        from workers.kube import KubeCluster

        secrets = ClusterSecrets(redis=self._runtime.redis, secret=secret_key(self._runtime.settings))
        kubeconfig = secrets.get(cluster=cluster, name=KUBECONFIG_SECRET)
        if kubeconfig is None:
            return None
        try:
            with KubeCluster.from_kubeconfig_data(data=kubeconfig, name=cluster) as kube:
                return {node.name: node.ready for node in kube.list_nodes()}
        except KobotError as exc:
            log.warning("cannot read the nodes of %s: %s", cluster, exc.user_message)
            return None

    def _changes(self, cluster: str, seen: dict[str, bool]) -> list[NodeChange]:
        key = keys.node_readiness(cluster)
        before = {k.decode(): v.decode() == "1" for k, v in synced(self._runtime.redis.hgetall(key)).items()}
        return [
            NodeChange(cluster=cluster, node=node, ready=ready)
            for node, ready in sorted(seen.items())
            # a node seen for the first time is announced only when it is not Ready
            if before.get(node, True) != ready
        ]

    def _remember(self, cluster: str, seen: dict[str, bool]) -> None:
        key = keys.node_readiness(cluster)
        pipe = self._runtime.redis.pipeline()
        pipe.delete(key)
        if seen:
            pipe.hset(key, mapping={node: "1" if ready else "0" for node, ready in seen.items()})
        pipe.execute()

    async def _announce(self, change: NodeChange) -> None:
        alerts = self._runtime.alerts
        if alerts is None:
            return
        if change.ready:
            message = OutgoingMessage(
                kind=MessageKind.NOTICE,
                title=f"{change.node} is Ready again",
                tone=Tone.SUCCESS,
                fields=(Field(label="Cluster", value=change.cluster),),
            )
            await alerts.publish_cluster_event(cluster=change.cluster, event="node_ready", message=message)
            return
        message = OutgoingMessage(
            kind=MessageKind.NOTICE,
            title=f"{change.node} is NotReady",
            tone=Tone.DANGER,
            fields=(Field(label="Cluster", value=change.cluster),),
            body="If it does not come back, replace it (a fresh node joins before this one is drained):",
            code=f"replace node {change.node} on {change.cluster}",
        )
        await alerts.publish_cluster_event(cluster=change.cluster, event="node_not_ready", message=message)
