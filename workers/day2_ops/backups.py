"""etcd backups beyond the snapshot: keep it at the chosen target, apply the schedule's retention, and
bring a backup back from wherever it lives (checked against its sha256) before a restore stops anything.
"""

from __future__ import annotations

from pathlib import Path

from kobot.errors import StepFailedError
from kobot.settings_backups import LOCAL_TARGET
from workers import etcd
from workers.backup_targets import object_key, target_named
from workers.context import StepContext
from workers.day2_ops.progress import load_state, say


def store_step(ctx: StepContext) -> None:
    """Upload the snapshot to the job's target; once there, kobot's disk no longer keeps a copy."""
    name = str(ctx.params.get("target") or LOCAL_TARGET)
    backup_id = load_state(ctx).backup_id
    if backup_id is None:
        raise StepFailedError("no snapshot was taken; nothing to store", task="store backup")
    backup = etcd.get_backup(redis=ctx.redis, backup_id=backup_id, cluster=ctx.cluster)
    backup.scheduled = bool(ctx.params.get("scheduled"))
    key = object_key(cluster=ctx.cluster, backup_id=backup.id)
    if backup.target == name and backup.key == key:
        return
    target = target_named(ctx.settings, name)
    local = etcd.verified_file(data_dir=ctx.settings.data_dir, backup=backup)
    target.put(source=local, key=key, sha256=backup.sha256)
    backup.target, backup.key = name, key
    etcd.save_backup(redis=ctx.redis, backup=backup)
    if name != LOCAL_TARGET:
        local.unlink(missing_ok=True)
        # etcd_backup.yml's "<file>.sha256" note for people; the record keeps the digest
        local.with_name(f"{local.name}.sha256").unlink(missing_ok=True)
    say(ctx, f"backup {backup.id} kept at {target.describe()}, sha256 {backup.sha256[:12]}")


def retention_step(ctx: StepContext) -> None:
    """Keep the newest `keep` scheduled backups of this cluster at this target; delete older ones.

    Only backups kobot recorded are candidates, each deleted by the key it was stored under: nothing
    else in the bucket or folder is listed or touched, and backups taken by hand are never deleted."""
    keep = ctx.params.get("keep")
    if keep is None:
        return
    name = str(ctx.params.get("target") or LOCAL_TARGET)
    ours = [
        b for b in etcd.list_backups(redis=ctx.redis, cluster=ctx.cluster) if b.scheduled and b.target == name
    ]
    expired = ours[int(keep) :]
    if not expired:
        return
    target = target_named(ctx.settings, name)
    for backup in expired:
        target.delete(key=backup.object_key())
        etcd.forget_backup(redis=ctx.redis, backup=backup)
    say(ctx, f"retention: kept {int(keep)}, deleted {', '.join(b.id for b in expired)}")


def local_copy(ctx: StepContext, backup: etcd.EtcdBackup) -> Path:
    """The backup's snapshot on kobot's disk, fetched from its target if it lives elsewhere, and proven
    to be the recorded bytes (sha256) — a mismatch stops the job before anything is stopped."""
    if backup.target == LOCAL_TARGET:
        return etcd.verified_file(data_dir=ctx.settings.data_dir, backup=backup)
    dest = etcd.snapshot_path(data_dir=ctx.settings.data_dir, cluster=backup.cluster, backup_id=backup.id)
    fetched = backup.model_copy(update={"file": dest.name})
    if dest.is_file() and etcd.file_sha256(dest) == backup.sha256:
        return dest
    target_named(ctx.settings, backup.target).fetch(key=backup.object_key(), dest=dest)
    try:
        return etcd.verified_file(data_dir=ctx.settings.data_dir, backup=fetched)
    except StepFailedError:
        # bytes that are not the backup never stay under its name on kobot's disk
        dest.unlink(missing_ok=True)
        raise
