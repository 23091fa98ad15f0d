"""Day 2 operations: scale workers, remove or replace a node, upgrade, etcd backup and restore, delete.

Every path that takes a node away drains it through the Kubernetes API first (evictions that honour
disruption budgets) and removes only nodes whose drain finished: a drain that fails stops the job and
the node stays, cordoned. What later steps and retries need (which nodes, which are drained or
upgraded, which backup) is kept in the job's work dir, so a retry in a new process resumes there.
"""

from __future__ import annotations

from kobot.clusters import ClusterState
from kobot.job_records import JobKind, JobSpec
from workers.cluster_steps import render_inventory_step, wait_for_ssh_step
from workers.day2_ops.backups import retention_step, store_step
from workers.day2_ops.history import day2_operation
from workers.day2_ops.lifecycle import (
    destroy_machines_step,
    forget_step,
    mark_deleting_step,
    nodes_back_step,
    reset_step,
    restore_step,
    verify_backup_step,
)
from workers.day2_ops.nodes import (
    cordon_step,
    drain_step,
    join_step,
    machines_step,
    master_leaves_first_step,
    pick_node_step,
    plan_added_node_step,
    plan_replacement_step,
    ready_step,
    remove_step,
    scale_plan_step,
    wait_for_new_nodes_ssh_step,
)
from workers.day2_ops.upgrade import (
    check_nodes_step,
    control_plane_step,
    snapshot_step,
    verify_upgrade_step,
    workers_step,
)
from workers.operations import Operation, Step, operation

INVENTORY = Step("inventory", "Render inventory", render_inventory_step)
WAIT_SSH = Step("wait_ssh", "Wait for SSH", wait_for_ssh_step)
LEAVE = (
    Step("cordon", "Cordon leaving nodes", cordon_step),
    Step("drain", "Drain leaving nodes", drain_step),
    Step("remove", "Reset and remove drained nodes", remove_step),
)
JOIN = (
    Step("machines", "Create hosts (Terraform)", machines_step),
    INVENTORY,
    Step("wait_ssh", "Wait for SSH on the new nodes", wait_for_new_nodes_ssh_step),
    Step("join", "Join new nodes", join_step),
    Step("ready", "Wait for new nodes to be Ready", ready_step),
)


# --- operations -----------------------------------------------------------------------------------------
@operation(JobKind.WORKERS_SCALE.value)
def workers_scale(spec: JobSpec) -> Operation:
    """A negative delta only removes, a positive one only adds; a target count may do either, so its
    job carries both halves and the half that does not apply says so and succeeds."""
    plan = Step("plan", "Plan the change", scale_plan_step)
    delta = spec.params.get("delta")
    if delta is not None and int(delta) < 0:
        return day2_operation(JobKind.WORKERS_SCALE, [plan, INVENTORY, *LEAVE])
    if delta is not None:
        return day2_operation(JobKind.WORKERS_SCALE, [plan, *JOIN])
    return day2_operation(JobKind.WORKERS_SCALE, [plan, *JOIN, *LEAVE])


@operation(JobKind.NODE_ADD.value)
def node_add(spec: JobSpec) -> Operation:
    return day2_operation(JobKind.NODE_ADD, [Step("plan", "Plan the new node", plan_added_node_step), *JOIN])


@operation(JobKind.NODE_REMOVE.value)
def node_remove(spec: JobSpec) -> Operation:
    return day2_operation(
        JobKind.NODE_REMOVE, [Step("check", "Check the node", pick_node_step), INVENTORY, *LEAVE]
    )


@operation(JobKind.NODE_REPLACE.value)
def node_replace(spec: JobSpec) -> Operation:
    """A worker's successor joins first, then the old worker is drained and removed (capacity first).
    A master leaves first: its etcd member is removed by a member that stays (refused when those alone
    would not hold the majority), then its successor joins; joining first would count a dead member
    towards the majority the join needs, and a join that stalls would cost the quorum."""
    plan = Step("plan", "Plan the replacement", plan_replacement_step)
    master_first = Step("master_leaves", "A replaced master leaves etcd first", master_leaves_first_step)
    return day2_operation(JobKind.NODE_REPLACE, [plan, master_first, *JOIN, *LEAVE])


@operation(JobKind.CLUSTER_UPGRADE.value)
def cluster_upgrade(spec: JobSpec) -> Operation:
    steps = [
        INVENTORY,
        WAIT_SSH,
        Step("check", "Check every node is Ready", check_nodes_step),
        Step("snapshot", "etcd snapshot", snapshot_step),
        Step("control_plane", "Upgrade masters one by one", control_plane_step),
        Step("workers", "Upgrade workers in batches", workers_step),
        Step("verify", "Check every node is Ready", verify_upgrade_step),
    ]
    return day2_operation(JobKind.CLUSTER_UPGRADE, steps, on_failure_state=ClusterState.RUNNING)


@operation(JobKind.ETCD_BACKUP.value)
def etcd_backup(spec: JobSpec) -> Operation:
    """Snapshot, keep it at the chosen target (kobot's disk unless `target` names another), then apply
    a schedule's `keep`."""
    steps = [
        INVENTORY,
        Step("snapshot", "etcd snapshot", snapshot_step),
        Step("store", "Keep the snapshot at its target", store_step),
        Step("retention", "Delete backups past the schedule's keep", retention_step),
    ]
    return day2_operation(JobKind.ETCD_BACKUP, steps)


@operation(JobKind.ETCD_RESTORE.value)
def etcd_restore(spec: JobSpec) -> Operation:
    steps = [
        Step("verify", "Check the backup", verify_backup_step),
        INVENTORY,
        WAIT_SSH,
        Step("restore", "Stop API servers, restore every etcd member, start", restore_step),
        Step("nodes", "Wait for every node to be Ready", nodes_back_step),
    ]
    return day2_operation(JobKind.ETCD_RESTORE, steps)


@operation(JobKind.CLUSTER_DELETE.value)
def cluster_delete(spec: JobSpec) -> Operation:
    steps = [
        Step("mark", "Mark the cluster as deleting", mark_deleting_step),
        INVENTORY,
        Step("reset", "Reset every node", reset_step),
        Step("machines", "Destroy hosts (Terraform)", destroy_machines_step),
        Step("forget", "Forget the cluster", forget_step),
    ]
    return day2_operation(JobKind.CLUSTER_DELETE, steps, on_failure_state=ClusterState.FAILED)
