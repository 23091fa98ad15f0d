"""Upgrade steps: etcd snapshot first, masters one at a time, workers in drained batches."""

from __future__ import annotations

from collections.abc import Sequence

from kobot import automation_values
from kobot.clusters import ClusterRecord, ClusterState, NodeRecord
from kobot.errors import StepFailedError
from workers import etcd, playbook_names
from workers.cluster_inputs import (
    inventory_path,
    play_vars,
    refusing_unsafe_values,
    write_cluster_inventory,
)
from workers.context import StepContext
from workers.day2_ops.kube_access import drain_logger, drain_timeout, kube_for, kubeconfig_file
from workers.day2_ops.progress import load_state, save_state, say
from workers.day2_ops.record_edits import cluster_store
from workers.day2_ops.upgrade_rules import (
    UpgradeRefusedError,
    check_kubelets,
    check_upgrade,
    worker_batches,
)
from workers.kube import NODE_READY_TIMEOUT_SECONDS
from workers.offline_repository import kubeadm_in_repository


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
        dest = etcd.snapshot_path(data_dir=ctx.settings.data_dir, cluster=ctx.cluster, backup_id=backup_id)
        ctx.run_playbook(
            playbook_names.ETCD_BACKUP,
            inventory=inventory_path(ctx),
            extravars={**play_vars(ctx), "etcd_backup_dest": str(dest), "etcd_snapshot_name": dest.name},
        )
        backup = etcd.record_snapshot(
            path=dest, backup_id=backup_id, cluster=ctx.cluster, redis=ctx.redis, job_id=ctx.job_id
        )
    state.backup_id = backup.id
    save_state(ctx, state)
    say(ctx, f"etcd backup {backup.id}: {backup.size} bytes, sha256 {backup.sha256[:12]}")


def check_nodes_step(ctx: StepContext) -> None:
    """Upgrade only what kubeadm accepts, from packages the offline repository holds, on a healthy
    cluster: every node Ready and schedulable before anything changes. The command checked the same
    before approval; the cluster or the mirror may have changed since."""
    check_version(ctx)
    with kube_for(ctx) as kube:
        nodes = kube.list_nodes()
        server = kube.server_version()
    sick = [n.name for n in nodes if not n.ready or n.unschedulable]
    if sick:
        raise StepFailedError(f"not upgrading {ctx.cluster}: {', '.join(sick)} not Ready or cordoned")
    try:
        # a kubelet ahead of the API server now would stay ahead of it through the upgrade
        check_kubelets(
            api_server=server, kubelets={n.name: n.kubelet_version for n in nodes if n.kubelet_version}
        )
    except UpgradeRefusedError as exc:
        raise StepFailedError(f"not upgrading {ctx.cluster}: {exc.user_message}") from None
    store = cluster_store(ctx)
    record = store.require(ctx.cluster)
    record.state = ClusterState.UPGRADING
    store.save(record)


def check_version(ctx: StepContext) -> None:
    """The version rules and the repository answer of `upgrade`, asked again as the job starts; a retry
    after the masters were upgraded (the record still names the old version) is not refused."""
    record = cluster_store(ctx).require(ctx.cluster)
    target = str(ctx.params["version"])
    if load_state(ctx).upgraded:
        return
    try:
        check_upgrade(cluster=ctx.cluster, current=record.version, target=target)
    except UpgradeRefusedError as exc:
        raise StepFailedError(exc.user_message) from None
    if record.spec.offline_repo is not None:
        answer = kubeadm_in_repository(
            repo=record.spec.offline_repo, os=record.spec.os, arch=record.spec.arch, version=target
        )
        if not answer.found:
            raise StepFailedError(f"not upgrading {ctx.cluster}: {answer.line(target)}")
        say(ctx, answer.line(target))


def control_plane_step(ctx: StepContext) -> None:
    """Masters only in the inventory, so the playbook's serial-1 control-plane play is all that runs."""
    record = cluster_store(ctx).require(ctx.cluster)
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
    record = cluster_store(ctx).require(ctx.cluster)
    state = load_state(ctx)
    # the batches the approved plan showed (workers.day2_ops.upgrade_rules); a retry skips the upgraded ones
    for planned in worker_batches([n for n in record.nodes if n.role == "worker"]):
        batch = [n for n in planned if n.name not in state.upgraded]
        if not batch:
            continue
        names = ", ".join(n.name for n in batch)
        with kube_for(ctx) as kube:
            for node in batch:
                kube.drain(
                    node.name,
                    timeout=drain_timeout(ctx),
                    should_cancel=ctx.should_cancel,
                    on_event=drain_logger(ctx),
                )
            _upgrade_run(ctx, record, nodes=batch, inventory_name="inventory-workers.yml")
            for node in batch:
                kube.uncordon(node.name)
                kube.wait_ready(
                    node.name, timeout=NODE_READY_TIMEOUT_SECONDS, should_cancel=ctx.should_cancel
                )
        state.upgraded += [n.name for n in batch]
        save_state(ctx, state)
        say(ctx, f"upgraded {names}")


def _upgrade_run(
    ctx: StepContext, record: ClusterRecord, *, nodes: Sequence[NodeRecord], inventory_name: str
) -> None:
    members = [n for n in record.nodes if n.role == "master"] + [n for n in nodes if n.role != "master"]
    path = write_cluster_inventory(ctx, record, nodes=members, path=ctx.work_dir / inventory_name)
    with refusing_unsafe_values(ctx.cluster, task="upgrade variables"):
        version = automation_values.semver(str(ctx.params["version"]))
        upgrading = [automation_values.node_name(n.name) for n in nodes]
    with kubeconfig_file(ctx) as kubeconfig:
        ctx.run_playbook(
            playbook_names.CLUSTER_UPGRADE,
            inventory=path,
            tags=("kube_upgrade",),
            extravars={
                **play_vars(ctx),
                "kube_version": version,
                "kubeconfig_path": str(kubeconfig),
                "kube_upgrade_nodes": upgrading,
            },
        )


def verify_upgrade_step(ctx: StepContext) -> None:
    with kube_for(ctx) as kube:
        nodes = kube.list_nodes()
    sick = [n.name for n in nodes if not n.ready or n.unschedulable]
    if sick:
        raise StepFailedError(f"after the upgrade {', '.join(sick)} is not Ready or still cordoned")
    store = cluster_store(ctx)
    record = store.require(ctx.cluster)
    record.version = str(ctx.params["version"])
    record.spec = record.spec.model_copy(update={"version": record.version})
    store.save(record)
