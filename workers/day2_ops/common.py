"""What every Day 2 step shares: the job's progress file, API access, and the cluster record hooks."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel

from kobot.clusters import ClusterRecord, ClusterState, ClusterStore, HistoryEntry, NodeRecord
from kobot.errors import StepFailedError
from kobot.job_records import JobEventType, JobKind
from workers.cluster_inputs import refusing_unsafe_values, terraform_nodes, terraform_variables
from workers.cluster_secrets import KUBECONFIG_SECRET, cluster_secrets_for
from workers.context import StepContext
from workers.kube import DRAIN_TIMEOUT_SECONDS, DrainEvent, KubeCluster
from workers.operations import Operation, Step
from workers.terraform import workspace_for

STATE_FILE = "day2.json"
"""Per-job progress file in the job's work dir (node names only: nothing secret)."""

WORKER_BATCH_FRACTION = 0.2
"""Share of the workers upgraded at once (kubespray's 20%); at least one node per batch."""

KUBECONFIG_FILE = "admin.conf"
"""Name of the 0600 file a playbook reads the admin kubeconfig from, removed when its step ends."""


class Day2State(BaseModel):
    add: list[str] = []
    remove: list[str] = []
    drained: list[str] = []
    upgraded: list[str] = []
    backup_id: str | None = None


def load_state(ctx: StepContext) -> Day2State:
    path = ctx.work_dir / STATE_FILE
    return Day2State.model_validate_json(path.read_text()) if path.exists() else Day2State()


def save_state(ctx: StepContext, state: Day2State) -> None:
    path = ctx.work_dir / STATE_FILE
    partial = path.with_suffix(".part")
    partial.write_text(state.model_dump_json())
    partial.replace(path)


# --- shared pieces ------------------------------------------------------------------------------
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


def cluster_store(ctx: StepContext) -> ClusterStore:
    return ClusterStore(ctx.redis)


def node_index(name: str) -> int:
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def say(ctx: StepContext, message: str) -> None:
    ctx.emit(JobEventType.LOG, message=message)


# --- helpers --------------------------------------------------------------------------------------------
def find_node(record: ClusterRecord, name: str) -> NodeRecord:
    for node in record.nodes:
        if node.name == name:
            return node
    raise StepFailedError(f"{record.name} has no node {name}")


def recount(record: ClusterRecord) -> None:
    record.spec["workers"] = record.count("worker")
    record.spec["masters"] = record.count("master")


def mark_nodes(ctx: StepContext, names: Sequence[str], node_state: str) -> None:
    store = cluster_store(ctx)
    record = store.require(ctx.cluster)
    for node in record.nodes:
        if node.name in names:
            node.state = node_state
    store.save(record)


def creates_machines(record: ClusterRecord) -> bool:
    return record.provider not in ("manual", "")


def apply_machines(ctx: StepContext, record: ClusterRecord) -> None:

    workspace = workspace_for(settings=ctx.settings, cluster=ctx.cluster, provider=record.provider)
    with refusing_unsafe_values(ctx.cluster, task="terraform variables"):
        variables = terraform_variables(ctx.settings, provider=record.provider, nodes=terraform_nodes(record))
    outputs = workspace.apply(
        variables=variables,
        job_id=ctx.job_id,
        on_event=ctx.on_runner_event,
        should_cancel=ctx.should_cancel,
    )
    store = cluster_store(ctx)
    current = store.require(ctx.cluster)
    for node in current.nodes:
        out = outputs.get(node.name)
        if out is not None and node.state == "planned":
            node.address, node.state = out.ip, "provisioned"
    store.save(current)


def history_hook(
    kind: JobKind, outcome: str, *, state: ClusterState | None = None
) -> Callable[[StepContext], None]:
    def hook(ctx: StepContext) -> None:
        store = cluster_store(ctx)
        record = store.get(ctx.cluster)
        if record is None:
            return
        if state is not None:
            record.state = state
        note = outcome
        backup_id = load_state(ctx).backup_id
        if backup_id and outcome == "succeeded":
            note = f"succeeded (backup {backup_id})"
        record.add_history(HistoryEntry(job_id=ctx.job_id, kind=kind.value, outcome=note))
        store.save(record)

    return hook


def day2_operation(
    kind: JobKind, steps: Sequence[Step], *, on_failure_state: ClusterState | None = None
) -> Operation:
    running = ClusterState.RUNNING
    return Operation(
        kind=kind.value,
        steps=tuple(steps),
        on_success=history_hook(
            kind, "succeeded", state=running if kind is not JobKind.CLUSTER_DELETE else None
        ),
        on_failure=history_hook(kind, "failed", state=on_failure_state),
    )
