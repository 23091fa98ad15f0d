"""Day 2 operations: scale workers, remove or replace a node, upgrade, etcd backup and restore, delete.

Every path that takes a node away drains it through the Kubernetes API first (evictions that honour
disruption budgets) and removes only nodes whose drain finished: a drain that fails stops the job and
the node stays, cordoned. What later steps and retries need (which nodes, which are drained or
upgraded, which backup) is kept in the job's work dir, so a retry in a new process resumes there.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel

from bot.clusters import ClusterRecord, ClusterState, ClusterStore, HistoryEntry, NodeRecord
from bot.errors import StepFailedError
from workers import etcd
from workers.cluster_ops import (
    KUBECONFIG_SECRET,
    LOCAL_HOSTS,
    _cluster_vars,
    _play_vars,
    _secrets,
    _terraform_nodes,
    inventory_path,
    render_inventory_step,
    terraform_variables,
    wait_for_ssh_step,
)
from workers.context import StepContext
from workers.kube import DRAIN_TIMEOUT_SECONDS, NODE_READY_TIMEOUT_SECONDS, DrainEvent, KubeCluster
from workers.operations import Operation, Step, operation
from workers.spec import JobEventType, JobKind, JobSpec

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
    data = _secrets(ctx).get(cluster=ctx.cluster, name=KUBECONFIG_SECRET)
    if data is None:
        raise StepFailedError(
            f"kobot holds no admin kubeconfig for {ctx.cluster}",
            error="the create job stores it encrypted at its post-install step",
        )
    return KubeCluster.from_kubeconfig_data(data=data, name=ctx.cluster)


@contextmanager
def kubeconfig_file(ctx: StepContext) -> Iterator[Path]:
    """The admin kubeconfig as a 0600 file for one playbook run (kubectl on the controller)."""
    data = _secrets(ctx).get(cluster=ctx.cluster, name=KUBECONFIG_SECRET) or b""
    path = ctx.work_dir / KUBECONFIG_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _drain_timeout(ctx: StepContext) -> float:
    """One site setting for both drains: the API drain here and the playbooks' kubectl drain."""
    return float(ctx.settings.ansible_extra_vars.get("drain_timeout_seconds", DRAIN_TIMEOUT_SECONDS))


def _drain_logger(ctx: StepContext) -> Callable[[DrainEvent], None]:
    def log(event: DrainEvent) -> None:
        ctx.emit(
            JobEventType.LOG, host=event.node, message=f"{event.pod}: {event.kind.value} ({event.message})"
        )

    return log


def _store(ctx: StepContext) -> ClusterStore:
    return ClusterStore(ctx.redis)


def _index(name: str) -> int:
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _say(ctx: StepContext, message: str) -> None:
    ctx.emit(JobEventType.LOG, message=message)


# --- steps: drain and remove ----------------------------------------------------------------------
def cordon_step(ctx: StepContext) -> None:
    state = load_state(ctx)
    if not state.remove:
        _say(ctx, "no node leaves")
        return
    with kube_for(ctx) as kube:
        for name in state.remove:
            kube.cordon(name)
    _say(ctx, f"cordoned {', '.join(state.remove)}")


def drain_step(ctx: StepContext) -> None:
    """Drain each leaving node in turn; the first that cannot be drained stops the job."""
    state = load_state(ctx)
    with kube_for(ctx) as kube:
        for name in state.remove:
            if name in state.drained:
                continue
            result = kube.drain(
                name,
                timeout=_drain_timeout(ctx),
                should_cancel=ctx.should_cancel,
                on_event=_drain_logger(ctx),
            )
            state.drained.append(name)
            save_state(ctx, state)
            _say(ctx, f"{name} drained: {len(result.evicted)} pod(s) evicted, {len(result.skipped)} left")


def remove_step(ctx: StepContext) -> None:
    """Reset and delete drained nodes only, then drop them from the record (and their machines)."""
    state = load_state(ctx)
    if not state.remove:
        _say(ctx, "no node leaves")
        return
    undrained = [name for name in state.remove if name not in state.drained]
    if undrained:
        raise StepFailedError(f"{', '.join(undrained)} is not drained; kobot never removes an undrained node")
    with kubeconfig_file(ctx) as kubeconfig:
        ctx.run_playbook(
            "node_remove.yml",
            inventory=inventory_path(ctx),
            extravars={
                **_play_vars(ctx),
                "nodes_to_remove": state.remove,
                "kubeconfig_path": str(kubeconfig),
            },
        )
    with kube_for(ctx) as kube:
        for name in state.remove:
            kube.delete_node(name)
    store = _store(ctx)
    record = store.require(ctx.cluster)
    record.nodes = [node for node in record.nodes if node.name not in state.remove]
    _recount(record)
    store.save(record)
    if _creates_machines(record):
        _apply_machines(ctx, record)
        from workers.ippool import IpPools

        IpPools(ctx.redis).release(cluster=ctx.cluster, nodes=state.remove)
    _say(ctx, f"removed {', '.join(state.remove)}")


# --- steps: add -------------------------------------------------------------------------------------
def scale_plan_step(ctx: StepContext) -> None:
    record = _store(ctx).require(ctx.cluster)
    workers = sorted((n for n in record.nodes if n.role == "worker"), key=lambda n: _index(n.name))
    count, delta = ctx.params.get("count"), ctx.params.get("delta")
    target = int(count) if count is not None else len(workers) + int(delta or 0)
    state = load_state(ctx)
    if target < len(workers):
        state.remove = [node.name for node in reversed(workers[target:])]
        _say(ctx, f"workers {len(workers)} → {target}: newest leave first: {', '.join(state.remove)}")
    elif target > len(workers):
        state.add = _plan_new_workers(ctx, record, target)
        _say(ctx, f"workers {len(workers)} → {target}: adding {', '.join(state.add)}")
    else:
        _say(ctx, f"{ctx.cluster} already has {target} workers")
    save_state(ctx, state)


def _plan_new_workers(ctx: StepContext, record: ClusterRecord, target: int) -> list[str]:
    from workers.ippool import IpPools
    from workers.plan import ClusterPlan, ClusterSpec, NodePlan, NodeRole, plan_scale

    try:
        spec = ClusterSpec(**{k: v for k, v in record.spec.items() if k in ClusterSpec.model_fields})
        nodes = tuple(
            NodePlan(
                name=n.name,
                role=NodeRole(n.role),
                zone=n.zone,
                address=n.address,
                cpu=spec.node_sizes[NodeRole(n.role)].cpu,
                memory_mb=spec.node_sizes[NodeRole(n.role)].memory_mb,
                disk_gb=spec.node_sizes[NodeRole(n.role)].disk_gb,
            )
            for n in record.nodes
        )
        plan = ClusterPlan(spec=spec, nodes=nodes, vip=record.spec.get("api_vip"))
        scale = plan_scale(plan=plan, workers=target, pools=IpPools(ctx.redis))
    except ValueError as exc:
        raise StepFailedError(
            f"cannot plan new workers for {ctx.cluster}: {exc}",
            error=f"on provider=manual add each machine with `add node {ctx.cluster} host=<address>`",
        ) from None
    store = _store(ctx)
    record.nodes += [
        NodeRecord(name=n.name, role=n.role.value, address=n.address, zone=n.zone) for n in scale.add
    ]
    _recount(record)
    store.save(record)
    return [node.name for node in scale.add]


def machines_step(ctx: StepContext) -> None:
    """IaaS clusters: make the machines match the record (Terraform creates or destroys per node)."""
    record = _store(ctx).require(ctx.cluster)
    if not _creates_machines(record):
        _say(ctx, f"provider {record.provider}: kobot does not create these hosts")
        return
    _apply_machines(ctx, record)


def join_step(ctx: StepContext) -> None:
    state = load_state(ctx)
    if not state.add:
        _say(ctx, "no node joins")
        return
    ctx.run_playbook(
        "node_add.yml",
        inventory=inventory_path(ctx),
        extravars={**_play_vars(ctx), "nodes_to_add": state.add},
    )


def ready_step(ctx: StepContext) -> None:
    state = load_state(ctx)
    if not state.add:
        _say(ctx, "no node joins")
        return
    with kube_for(ctx) as kube:
        for name in state.add:
            kube.wait_ready(name, timeout=NODE_READY_TIMEOUT_SECONDS, should_cancel=ctx.should_cancel)
    _mark(ctx, state.add, "ready")


# --- steps: remove / replace one node ----------------------------------------------------------------
def pick_node_step(ctx: StepContext) -> None:
    record = _store(ctx).require(ctx.cluster)
    node = _node(record, str(ctx.params["node"]))
    if node.role == "master" and record.count("master") <= 1:
        raise StepFailedError(f"{node.name} is the only master of {ctx.cluster}; it cannot be removed")
    state = load_state(ctx)
    state.remove = [node.name]
    save_state(ctx, state)


def plan_replacement_step(ctx: StepContext) -> None:
    from workers.ippool import IpPools

    store = _store(ctx)
    record = store.require(ctx.cluster)
    old = _node(record, str(ctx.params["node"]))
    state = load_state(ctx)
    if state.add:
        return
    if not _creates_machines(record):
        raise StepFailedError(
            f"replacing {old.name} needs a new machine, and kobot does not create hosts on provider=manual",
            error=f"add one with `add node {ctx.cluster} host=<address>`, then `remove node {old.name}`",
        )
    same_role = [_index(n.name) for n in record.nodes if n.role == old.role]
    name = f"{ctx.cluster}-{old.role}-{max(same_role, default=0) + 1}"
    address = IpPools(ctx.redis).reserve(cluster=ctx.cluster, nodes={name: old.zone or ""})[name]
    record.nodes.append(NodeRecord(name=name, role=old.role, address=address, zone=old.zone))
    store.save(record)
    state.add, state.remove = [name], [old.name]
    save_state(ctx, state)
    _say(ctx, f"{name} ({address}) replaces {old.name}: it joins before {old.name} is drained")


# --- steps: upgrade -----------------------------------------------------------------------------------
def snapshot_step(ctx: StepContext) -> None:
    """An etcd snapshot kept by kobot: directly through etcdctl when kobot reaches etcd, else fetched
    from the first control-plane node by etcd_backup.yml."""
    state = load_state(ctx)
    if state.backup_id:
        return
    access = etcd.load_access(redis=ctx.redis, cluster=ctx.cluster)
    if access is not None:
        backup = etcd.snapshot_save(
            access=access,
            cluster=ctx.cluster,
            data_dir=ctx.settings.data_dir,
            redis=ctx.redis,
            job_id=ctx.job_id,
        )
    else:
        backup_id = etcd.new_backup_id(redis=ctx.redis, cluster=ctx.cluster)
        dest = etcd.backups_dir(data_dir=ctx.settings.data_dir, cluster=ctx.cluster) / f"{backup_id}.db"
        ctx.run_playbook(
            "etcd_backup.yml",
            inventory=inventory_path(ctx),
            extravars={**_play_vars(ctx), "etcd_backup_dest": str(dest), "etcd_snapshot_name": dest.name},
        )
        backup = etcd.record_snapshot(
            path=dest, backup_id=backup_id, cluster=ctx.cluster, redis=ctx.redis, job_id=ctx.job_id
        )
    state.backup_id = backup.id
    save_state(ctx, state)
    _say(ctx, f"etcd backup {backup.id}: {backup.size} bytes, sha256 {backup.sha256[:12]}")


def check_nodes_step(ctx: StepContext) -> None:
    """Upgrade only a healthy cluster: every node Ready and schedulable before anything changes."""
    with kube_for(ctx) as kube:
        nodes = kube.list_nodes()
    sick = [n.name for n in nodes if not n.ready or n.unschedulable]
    if sick:
        raise StepFailedError(f"not upgrading {ctx.cluster}: {', '.join(sick)} not Ready or cordoned")
    store = _store(ctx)
    record = store.require(ctx.cluster)
    record.state = ClusterState.UPGRADING
    store.save(record)


def control_plane_step(ctx: StepContext) -> None:
    """Masters only in the inventory, so the playbook's serial-1 control-plane play is all that runs."""
    record = _store(ctx).require(ctx.cluster)
    masters = [n for n in record.nodes if n.role == "master"]
    _upgrade_run(ctx, record, nodes=masters, inventory_name="inventory-control-plane.yml")
    with kube_for(ctx) as kube:
        for node in masters:
            kube.wait_ready(node.name, timeout=NODE_READY_TIMEOUT_SECONDS, should_cancel=ctx.should_cancel)
    state = load_state(ctx)
    state.upgraded = sorted(set(state.upgraded) | {n.name for n in masters})
    save_state(ctx, state)


def workers_step(ctx: StepContext) -> None:
    """Batches of workers: cordon and drain each, upgrade the batch, uncordon, wait for Ready."""
    record = _store(ctx).require(ctx.cluster)
    workers = sorted((n for n in record.nodes if n.role == "worker"), key=lambda n: _index(n.name))
    size = max(1, math.ceil(len(workers) * WORKER_BATCH_FRACTION))
    state = load_state(ctx)
    pending = [n for n in workers if n.name not in state.upgraded]
    for start in range(0, len(pending), size):
        batch = pending[start : start + size]
        names = ", ".join(n.name for n in batch)
        with kube_for(ctx) as kube:
            for node in batch:
                kube.drain(
                    node.name,
                    timeout=_drain_timeout(ctx),
                    should_cancel=ctx.should_cancel,
                    on_event=_drain_logger(ctx),
                )
            _upgrade_run(ctx, record, nodes=batch, inventory_name="inventory-workers.yml")
            for node in batch:
                kube.uncordon(node.name)
                kube.wait_ready(
                    node.name, timeout=NODE_READY_TIMEOUT_SECONDS, should_cancel=ctx.should_cancel
                )
        state.upgraded += [n.name for n in batch]
        save_state(ctx, state)
        _say(ctx, f"upgraded {names}")


def _upgrade_run(
    ctx: StepContext, record: ClusterRecord, *, nodes: Sequence[NodeRecord], inventory_name: str
) -> None:
    from workers.inventory import render_inventory, write_inventory

    members = [n for n in record.nodes if n.role == "master"] + [n for n in nodes if n.role != "master"]
    path = write_inventory(
        ctx.work_dir / inventory_name,
        render_inventory(
            nodes=[(n.name, n.role, n.address) for n in members],
            ssh_user=ctx.settings.ssh_user,
            ssh_key_path=ctx.settings.ssh_key_file,
            local_hosts=LOCAL_HOSTS,
            cluster_vars=_cluster_vars(record),
        ),
    )
    with kubeconfig_file(ctx) as kubeconfig:
        ctx.run_playbook(
            "cluster_upgrade.yml",
            inventory=path,
            tags=("kube_upgrade",),
            extravars={
                **_play_vars(ctx),
                "kube_version": str(ctx.params["version"]),
                "kubeconfig_path": str(kubeconfig),
                "kube_upgrade_nodes": [n.name for n in nodes],
            },
        )


def verify_upgrade_step(ctx: StepContext) -> None:
    with kube_for(ctx) as kube:
        nodes = kube.list_nodes()
    sick = [n.name for n in nodes if not n.ready or n.unschedulable]
    if sick:
        raise StepFailedError(f"after the upgrade {', '.join(sick)} is not Ready or still cordoned")
    store = _store(ctx)
    record = store.require(ctx.cluster)
    record.version = str(ctx.params["version"])
    record.spec["version"] = record.version
    store.save(record)


# --- steps: etcd backup and restore --------------------------------------------------------------------
def verify_backup_step(ctx: StepContext) -> None:
    backup = etcd.get_backup(redis=ctx.redis, backup_id=str(ctx.params["backup"]), cluster=ctx.cluster)
    etcd.verified_file(data_dir=ctx.settings.data_dir, backup=backup)
    _say(
        ctx,
        f"backup {backup.id} from {backup.created_at:%Y-%m-%d %H:%M} UTC, {backup.size} bytes, checksum ok",
    )


def restore_step(ctx: StepContext) -> None:
    """etcd_restore.yml stops every API server before any member's data is replaced."""
    backup = etcd.get_backup(redis=ctx.redis, backup_id=str(ctx.params["backup"]), cluster=ctx.cluster)
    path = etcd.verified_file(data_dir=ctx.settings.data_dir, backup=backup)
    ctx.run_playbook(
        "etcd_restore.yml",
        inventory=inventory_path(ctx),
        extravars={
            **_play_vars(ctx),
            "etcd_restore_snapshot": str(path),
            "etcd_restore_sha256": backup.sha256,
            "etcd_snapshot_name": f"{backup.id}-{ctx.job_id}",
        },
    )


def nodes_back_step(ctx: StepContext) -> None:
    """After a restore the API answers again and knows the record's nodes."""
    record = _store(ctx).require(ctx.cluster)
    with kube_for(ctx) as kube:
        for node in record.nodes:
            kube.wait_ready(node.name, timeout=NODE_READY_TIMEOUT_SECONDS, should_cancel=ctx.should_cancel)
    _say(ctx, f"{len(record.nodes)} nodes Ready")


# --- steps: delete -------------------------------------------------------------------------------------
def mark_deleting_step(ctx: StepContext) -> None:
    store = _store(ctx)
    record = store.require(ctx.cluster)
    record.state = ClusterState.DELETING
    store.save(record)


def reset_step(ctx: StepContext) -> None:
    ctx.run_playbook("cluster_delete.yml", inventory=inventory_path(ctx), extravars=_play_vars(ctx))


def destroy_machines_step(ctx: StepContext) -> None:
    from workers.terraform import workspace_for

    record = _store(ctx).require(ctx.cluster)
    if not _creates_machines(record):
        _say(ctx, f"provider {record.provider}: the hosts were not created by kobot and stay")
        return
    workspace = workspace_for(settings=ctx.settings, cluster=ctx.cluster, provider=record.provider)
    workspace.destroy(
        variables=terraform_variables(ctx.settings, provider=record.provider, nodes=_terraform_nodes(record)),
        job_id=ctx.job_id,
        on_event=ctx.on_runner_event,
        should_cancel=ctx.should_cancel,
    )


def forget_step(ctx: StepContext) -> None:
    """Release addresses and drop the cluster's secrets and record; backups stay for a later restore."""
    from workers.ippool import IpPools

    IpPools(ctx.redis).release(cluster=ctx.cluster)
    _secrets(ctx).drop(cluster=ctx.cluster)
    etcd.forget_access(redis=ctx.redis, cluster=ctx.cluster)
    _store(ctx).delete(ctx.cluster)


# --- helpers --------------------------------------------------------------------------------------------
def _node(record: ClusterRecord, name: str) -> NodeRecord:
    for node in record.nodes:
        if node.name == name:
            return node
    raise StepFailedError(f"{record.name} has no node {name}")


def _recount(record: ClusterRecord) -> None:
    record.spec["workers"] = record.count("worker")
    record.spec["masters"] = record.count("master")


def _mark(ctx: StepContext, names: Sequence[str], node_state: str) -> None:
    store = _store(ctx)
    record = store.require(ctx.cluster)
    for node in record.nodes:
        if node.name in names:
            node.state = node_state
    store.save(record)


def _creates_machines(record: ClusterRecord) -> bool:
    return record.provider not in ("manual", "")


def _apply_machines(ctx: StepContext, record: ClusterRecord) -> None:
    from workers.terraform import workspace_for

    workspace = workspace_for(settings=ctx.settings, cluster=ctx.cluster, provider=record.provider)
    outputs = workspace.apply(
        variables=terraform_variables(ctx.settings, provider=record.provider, nodes=_terraform_nodes(record)),
        job_id=ctx.job_id,
        on_event=ctx.on_runner_event,
        should_cancel=ctx.should_cancel,
    )
    store = _store(ctx)
    current = store.require(ctx.cluster)
    for node in current.nodes:
        out = outputs.get(node.name)
        if out is not None and node.state == "planned":
            node.address, node.state = out.ip, "provisioned"
    store.save(current)


def _history(
    kind: JobKind, outcome: str, *, state: ClusterState | None = None
) -> Callable[[StepContext], None]:
    def hook(ctx: StepContext) -> None:
        store = _store(ctx)
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


def _operation(
    kind: JobKind, steps: Sequence[Step], *, on_failure_state: ClusterState | None = None
) -> Operation:
    running = ClusterState.RUNNING
    return Operation(
        kind=kind.value,
        steps=tuple(steps),
        on_success=_history(kind, "succeeded", state=running if kind is not JobKind.CLUSTER_DELETE else None),
        on_failure=_history(kind, "failed", state=on_failure_state),
    )


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
    WAIT_SSH,
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
        return _operation(JobKind.WORKERS_SCALE, [plan, INVENTORY, *LEAVE])
    if delta is not None:
        return _operation(JobKind.WORKERS_SCALE, [plan, *JOIN])
    return _operation(JobKind.WORKERS_SCALE, [plan, *JOIN, *LEAVE])


@operation(JobKind.NODE_REMOVE.value)
def node_remove(spec: JobSpec) -> Operation:
    return _operation(
        JobKind.NODE_REMOVE, [Step("check", "Check the node", pick_node_step), INVENTORY, *LEAVE]
    )


@operation(JobKind.NODE_REPLACE.value)
def node_replace(spec: JobSpec) -> Operation:
    """The replacement joins first (a new master adds its etcd member), then the old node is drained and
    reset (kubeadm reset removes its etcd member): quorum never drops below the starting size."""
    plan = Step("plan", "Plan the replacement", plan_replacement_step)
    return _operation(JobKind.NODE_REPLACE, [plan, *JOIN, *LEAVE])


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
    return _operation(JobKind.CLUSTER_UPGRADE, steps, on_failure_state=ClusterState.RUNNING)


@operation(JobKind.ETCD_BACKUP.value)
def etcd_backup(spec: JobSpec) -> Operation:
    return _operation(JobKind.ETCD_BACKUP, [INVENTORY, Step("snapshot", "etcd snapshot", snapshot_step)])


@operation(JobKind.ETCD_RESTORE.value)
def etcd_restore(spec: JobSpec) -> Operation:
    steps = [
        Step("verify", "Check the backup", verify_backup_step),
        INVENTORY,
        WAIT_SSH,
        Step("restore", "Stop API servers, restore every etcd member, start", restore_step),
        Step("nodes", "Wait for every node to be Ready", nodes_back_step),
    ]
    return _operation(JobKind.ETCD_RESTORE, steps)


@operation(JobKind.CLUSTER_DELETE.value)
def cluster_delete(spec: JobSpec) -> Operation:
    steps = [
        Step("mark", "Mark the cluster as deleting", mark_deleting_step),
        INVENTORY,
        Step("reset", "Reset every node", reset_step),
        Step("machines", "Destroy hosts (Terraform)", destroy_machines_step),
        Step("forget", "Forget the cluster", forget_step),
    ]
    return _operation(JobKind.CLUSTER_DELETE, steps, on_failure_state=ClusterState.FAILED)
