"""etcd restore and cluster delete steps."""

from __future__ import annotations

from kobot import automation_values
from kobot.clusters import ClusterState
from workers import etcd, playbook_names
from workers.cluster_inputs import (
    inventory_path,
    play_vars,
    record_terraform_variables,
    refusing_unsafe_values,
)
from workers.cluster_secrets import cluster_secrets_for
from workers.context import StepContext
from workers.day2_ops.backups import local_copy
from workers.day2_ops.kube_access import kube_for
from workers.day2_ops.machines import creates_machines
from workers.day2_ops.progress import say
from workers.day2_ops.record_edits import cluster_store
from workers.ippool import IpPools
from workers.kube import NODE_READY_TIMEOUT_SECONDS
from workers.terraform import workspace_for


# --- steps: etcd backup and restore --------------------------------------------------------------------
def verify_backup_step(ctx: StepContext) -> None:
    """Fetch the backup from wherever it lives and check its sha256 before anything is stopped."""
    backup = etcd.get_backup(redis=ctx.redis, backup_id=str(ctx.params["backup"]), cluster=ctx.cluster)
    local_copy(ctx, backup)
    say(
        ctx,
        f"backup {backup.id} from {backup.created_at:%Y-%m-%d %H:%M} UTC at {backup.target}, "
        f"{backup.size} bytes, checksum ok",
    )


def restore_step(ctx: StepContext) -> None:
    """etcd_restore.yml stops every API server before any member's data is replaced."""
    backup = etcd.get_backup(redis=ctx.redis, backup_id=str(ctx.params["backup"]), cluster=ctx.cluster)
    path = local_copy(ctx, backup)
    with refusing_unsafe_values(ctx.cluster, task="etcd restore variables"):
        extravars = {
            **play_vars(ctx),
            "etcd_restore_snapshot": str(path),
            "etcd_restore_sha256": automation_values.sha256_hex(backup.sha256),
            "etcd_snapshot_name": automation_values.path_component(
                f"{automation_values.backup_id(backup.id)}-{ctx.job_id}", what="snapshot name"
            ),
        }
    ctx.run_playbook(playbook_names.ETCD_RESTORE, inventory=inventory_path(ctx), extravars=extravars)


def nodes_back_step(ctx: StepContext) -> None:
    """After a restore the API answers again and knows the record's nodes."""
    record = cluster_store(ctx).require(ctx.cluster)
    with kube_for(ctx) as kube:
        for node in record.nodes:
            kube.wait_ready(node.name, timeout=NODE_READY_TIMEOUT_SECONDS, should_cancel=ctx.should_cancel)
    say(ctx, f"{len(record.nodes)} nodes Ready")


# --- steps: delete -------------------------------------------------------------------------------------
def mark_deleting_step(ctx: StepContext) -> None:
    store = cluster_store(ctx)
    record = store.require(ctx.cluster)
    record.state = ClusterState.DELETING
    store.save(record)


def reset_step(ctx: StepContext) -> None:
    ctx.run_playbook(playbook_names.CLUSTER_DELETE, inventory=inventory_path(ctx), extravars=play_vars(ctx))


def destroy_machines_step(ctx: StepContext) -> None:

    record = cluster_store(ctx).require(ctx.cluster)
    if not creates_machines(record):
        say(ctx, f"provider {record.provider}: the hosts were not created by kobot and stay")
        return
    workspace = workspace_for(settings=ctx.settings, cluster=ctx.cluster, provider=record.provider)
    with refusing_unsafe_values(ctx.cluster, task="terraform variables"):
        variables = record_terraform_variables(ctx.settings, record)
    workspace.destroy(
        variables=variables,
        job_id=ctx.job_id,
        on_event=ctx.on_runner_event,
        should_cancel=ctx.should_cancel,
    )


def forget_step(ctx: StepContext) -> None:
    """Release addresses and drop the cluster's secrets and record; backups stay for a later restore."""

    IpPools(ctx.redis).release(cluster=ctx.cluster)
    cluster_secrets_for(ctx).drop(cluster=ctx.cluster)
    etcd.forget_access(redis=ctx.redis, cluster=ctx.cluster)
    cluster_store(ctx).delete(ctx.cluster)
