"""A Day 2 step's way into the cluster's API: the stored admin kubeconfig, as a client or a 0600 file,
and the drain settings both drains share."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from kobot.errors import StepFailedError
from kobot.job_records import JobEventType
from workers.cluster_secrets import KUBECONFIG_SECRET, cluster_secrets_for
from workers.context import StepContext
from workers.kube import DRAIN_TIMEOUT_SECONDS, DrainEvent, KubeCluster

KUBECONFIG_FILE = "admin.conf"
"""Name of the 0600 file a playbook reads the admin kubeconfig from, removed when its step ends."""


def kube_for(ctx: StepContext) -> KubeCluster:
    data = cluster_secrets_for(ctx).get(cluster=ctx.cluster, name=KUBECONFIG_SECRET)
    if data is None:
        raise StepFailedError(
            f"kobot holds no admin kubeconfig for {ctx.cluster}",
            error="the create job stores it encrypted at its post-install step",
        )
    return KubeCluster.from_kubeconfig_data(data=data, name=ctx.cluster)


@contextmanager
def kubeconfig_file(ctx: StepContext) -> Iterator[Path]:
    """The admin kubeconfig as a 0600 file for one playbook run (kubectl on the controller)."""
    data = cluster_secrets_for(ctx).get(cluster=ctx.cluster, name=KUBECONFIG_SECRET) or b""
    path = ctx.work_dir / KUBECONFIG_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def drain_timeout(ctx: StepContext) -> float:
    """One site setting for both drains: the API drain here and the playbooks' kubectl drain."""
    return float(ctx.settings.ansible_extra_vars.get("drain_timeout_seconds", DRAIN_TIMEOUT_SECONDS))


def drain_logger(ctx: StepContext) -> Callable[[DrainEvent], None]:
    def log(event: DrainEvent) -> None:
        ctx.emit(
            JobEventType.LOG, host=event.node, message=f"{event.pod}: {event.kind.value} ({event.message})"
        )

    return log
