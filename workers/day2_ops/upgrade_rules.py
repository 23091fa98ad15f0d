"""Which Kubernetes upgrades kubeadm accepts, the path to a version farther away, and the drain batches
an upgrade runs in.

kubeadm upgrades the control plane one minor version at a time and never downgrades one; kubelets
follow the API servers, never lead them. `upgrade` (the command, before approval) and the upgrade job
(before touching a node) ask the same rules here, so a plan that was approved is a plan the job accepts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kobot.clusters import ClusterRecord, NodeRecord
from kobot.errors import KobotError
from kobot.validation import SUPPORTED_KUBERNETES_VERSIONS
from workers.day2_ops.record_edits import node_index

WORKER_BATCH_FRACTION = 0.2
"""Share of the workers upgraded at once (kubespray's 20%); at least one node per batch."""

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


class UpgradeRefusedError(KobotError):
    """An upgrade kubeadm would refuse (downgrade, same version, a skipped minor, a kubelet ahead of the
    API server) or whose packages the cluster's offline repository does not hold."""


@dataclass(frozen=True, order=True)
class KubeVersion:
    """A Kubernetes release `major.minor.patch`, ordered as releases are."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> KubeVersion:
        """`1.31.2` or `v1.31.2`; anything else is refused with the form expected."""
        match = _VERSION.fullmatch(text.strip())
        if match is None:
            raise UpgradeRefusedError(f"'{text}' is not a Kubernetes version of the form 1.N.P")
        major, minor, patch = (int(g) for g in match.groups())
        return cls(major=major, minor=minor, patch=patch)

    @property
    def line(self) -> str:
        """The minor release line, `1.31`."""
        return f"{self.major}.{self.minor}"

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def _newest_patch(major: int, minor: int) -> KubeVersion | None:
    newest = SUPPORTED_KUBERNETES_VERSIONS.get(f"{major}.{minor}")
    return None if newest is None else KubeVersion(major=major, minor=minor, patch=newest)


def upgrade_path(*, current: KubeVersion, target: KubeVersion) -> tuple[KubeVersion, ...]:
    """The versions to go through, one minor at a time, ending at `target` (the current one excluded).

    A minor passed on the way is taken at the newest patch kobot supports for it, as the Kubernetes
    upgrade guides advise; a minor kobot does not carry is refused, naming it."""
    path: list[KubeVersion] = []
    for minor in range(current.minor + 1, target.minor):
        step = _newest_patch(current.major, minor)
        if step is None:
            raise UpgradeRefusedError(
                f"the way from {current} to {target} passes {current.major}.{minor}, which kobot does not "
                f"carry; supported minors: {', '.join(SUPPORTED_KUBERNETES_VERSIONS)}"
            )
        path.append(step)
    path.append(target)
    return tuple(path)


def check_upgrade(*, cluster: str, current: str | None, target: str) -> KubeVersion:
    """The target version if kubeadm would take the cluster from `current` to it in one upgrade; else an
    `UpgradeRefusedError` that says why and, for a skipped minor, the path and the command to run first."""
    wanted = KubeVersion.parse(target)
    if current is None:
        raise UpgradeRefusedError(
            f"kobot does not know which version {cluster} runs, so it cannot tell whether {wanted} is an "
            "upgrade; `show cluster` names what kobot knows"
        )
    running = KubeVersion.parse(current)
    if wanted == running:
        raise UpgradeRefusedError(f"{cluster} already runs {running}; nothing to upgrade")
    if wanted < running:
        raise UpgradeRefusedError(
            f"{wanted} is older than the {running} {cluster} runs: kubeadm does not downgrade a control "
            f"plane (an older API server cannot read what a newer one wrote). To go back, restore an etcd "
            f"backup taken before the upgrade"
        )
    if wanted.major != running.major:
        raise UpgradeRefusedError(f"{running} → {wanted} changes the major version; kubeadm cannot do that")
    if wanted.minor > running.minor + 1:
        path = upgrade_path(current=running, target=wanted)
        steps = " → ".join(str(v) for v in (running, *path))
        raise UpgradeRefusedError(
            f"kubeadm upgrades one minor version at a time: {steps}. "
            f"Run `upgrade {cluster} {path[0]}` first, then the next step"
        )
    return wanted


def check_kubelets(*, api_server: str, kubelets: Mapping[str, str]) -> None:
    """Refuse when a kubelet is newer than the API server it talks to (a skew Kubernetes does not
    support: the kubelet may use API fields the server does not know)."""
    server = KubeVersion.parse(api_server)
    ahead = sorted(name for name, version in kubelets.items() if KubeVersion.parse(version) > server)
    if ahead:
        shown = ", ".join(f"{name} ({kubelets[name]})" for name in ahead)
        raise UpgradeRefusedError(
            f"kubelets newer than the API server ({server}): {shown}; "
            "the control plane must be upgraded before any kubelet"
        )


@dataclass(frozen=True)
class UpgradeBatches:
    """The order an upgrade touches nodes in: masters one at a time, then workers in drained batches."""

    masters: tuple[str, ...]
    workers: tuple[tuple[str, ...], ...]


def worker_batches(workers: Sequence[NodeRecord]) -> list[list[NodeRecord]]:
    """Workers by their number, in batches of `WORKER_BATCH_FRACTION` of them (at least one node)."""
    ordered = sorted(workers, key=lambda n: node_index(n.name))
    size = max(1, math.ceil(len(ordered) * WORKER_BATCH_FRACTION))
    return [ordered[start : start + size] for start in range(0, len(ordered), size)]


def upgrade_batches(record: ClusterRecord) -> UpgradeBatches:
    """What the upgrade job will do to `record`'s nodes, in its order."""
    # masters in record order: the inventory lists them so, and the control-plane play runs serial 1
    masters = [n for n in record.nodes if n.role == "master"]
    batches = worker_batches([n for n in record.nodes if n.role == "worker"])
    return UpgradeBatches(
        masters=tuple(n.name for n in masters),
        workers=tuple(tuple(n.name for n in batch) for batch in batches),
    )
