"""How a Day 2 operation ends: its outcome in the cluster's history and the cluster's state after it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kobot.clusters import ClusterState, HistoryEntry
from kobot.job_records import JobKind
from workers.context import StepContext
from workers.day2_ops.progress import load_state
from workers.day2_ops.record_edits import cluster_store
from workers.operations import Operation, Step


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
