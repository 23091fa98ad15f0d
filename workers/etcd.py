"""etcd snapshots through `etcdctl`: save one with a checksum and a record, list them, restore one.

Nothing secret reaches a command line: the endpoints and the client certificate paths travel in
`ETCDCTL_*` environment variables (kubeadm clusters authenticate etcd clients by certificate, so there
is no password to carry). Snapshots live under `<data_dir>/backups/<cluster>/<backup-id>.db` (mode
0600) and each has a JSON record in Redis, so `restore` can check the file is the one that was taken.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

from pydantic import ConfigDict, Field
from redis import Redis

from kobot import automation_values, keys
from kobot.clock import utcnow
from kobot.deferred_models import DeferredModel
from kobot.errors import NotFoundError, StepFailedError

# --- defaults -------------------------------------------------------------------------------------
BACKUPS_DIR = "backups"
"""Directory under the data dir that holds one folder of snapshots per cluster."""

ETCDCTL_TIMEOUT_SECONDS = 300.0
"""Longest one etcdctl call may take: a multi-GB snapshot over a slow link stays inside it."""

ETCDCTL_DIAL_TIMEOUT = "3s"
"""How long etcdctl tries to connect before it says the endpoint is down."""

ETCDCTL_COMMAND_TIMEOUT = "5s"
"""Bound of a short etcdctl call such as the health check that precedes every snapshot."""

SNAPSHOT_SUFFIX = ".db"
CHUNK_BYTES = 1 << 20


class EtcdAccess(DeferredModel):
    """How kobot reaches a cluster's etcd: client URLs and certificate files (paths, never contents)."""

    model_config = ConfigDict(frozen=True)

    endpoints: tuple[str, ...] = Field(min_length=1)
    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def environment(self) -> dict[str, str]:
        env = {
            "ETCDCTL_API": "3",
            "ETCDCTL_ENDPOINTS": ",".join(self.endpoints),
            "ETCDCTL_DIAL_TIMEOUT": ETCDCTL_DIAL_TIMEOUT,
            "ETCDCTL_COMMAND_TIMEOUT": ETCDCTL_COMMAND_TIMEOUT,
        }
        for name, path in (("CACERT", self.cacert), ("CERT", self.cert), ("KEY", self.key)):
            if path is not None:
                env[f"ETCDCTL_{name}"] = str(path)
        return env


class EtcdBackup(DeferredModel):
    """One snapshot kobot took: what `list backups` shows and `restore` checks."""

    id: str
    cluster: str
    file: str
    """File name under the cluster's backup folder."""
    size: int
    sha256: str
    created_at: datetime
    job_id: str | None = None
    revision: int | None = None
    total_keys: int | None = None
    target: str = "local"
    """Name of the backup target that holds it (`local` is kobot's disk; see settings `backups`)."""
    key: str | None = None
    """Object key at the target, `<cluster>/<id>.db`; None for snapshots kept before targets existed."""
    scheduled: bool = False
    """Taken by a schedule: only these count towards (and are deleted by) the schedule's `keep`."""

    def object_key(self) -> str:
        return self.key or f"{self.cluster}/{self.file}"


class EtcdMember(DeferredModel):
    """The identity a restored member starts with (a restore makes a new cluster from the snapshot)."""

    name: str
    peer_url: str
    initial_cluster: str
    cluster_token: str = "etcd-cluster"


# --- access records ---------------------------------------------------------------------------------
def save_access(*, redis: Redis, cluster: str, access: EtcdAccess) -> None:
    redis.set(keys.etcd_access(cluster), access.model_dump_json())


def load_access(*, redis: Redis, cluster: str) -> EtcdAccess | None:
    raw: bytes | None = redis.get(keys.etcd_access(cluster))  # type: ignore[assignment]
    return None if raw is None else EtcdAccess.model_validate_json(raw)


def forget_access(*, redis: Redis, cluster: str) -> None:
    redis.delete(keys.etcd_access(cluster))


# --- snapshots ---------------------------------------------------------------------------------------
def backups_dir(*, data_dir: Path, cluster: str) -> Path:
    """The cluster's snapshot folder; a cluster name that is no plain name is refused (UnsafeValueError)."""
    automation_values.cluster_name(cluster)
    path = automation_values.path_inside(data_dir / BACKUPS_DIR, cluster, what="cluster name")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def snapshot_path(*, data_dir: Path, cluster: str, backup_id: str) -> Path:
    """Where the snapshot of `backup_id` lives; ids that could leave the folder are refused."""
    automation_values.backup_id(backup_id)
    folder = backups_dir(data_dir=data_dir, cluster=cluster)
    return automation_values.path_inside(folder, f"{backup_id}{SNAPSHOT_SUFFIX}", what="backup id")


def endpoint_healthy(*, access: EtcdAccess) -> bool:
    return _etcdctl(["endpoint", "health"], env=access.environment(), check=False).returncode == 0


class EtcdEndpointHealth(DeferredModel):
    """One endpoint as `etcdctl endpoint health` saw it."""

    endpoint: str
    healthy: bool
    error: str = ""


def endpoint_health(*, access: EtcdAccess) -> list[EtcdEndpointHealth]:
    """Each endpoint's health, one row per endpoint: a member that is down does not hide the others."""
    result = _etcdctl(["endpoint", "health", "--write-out=json"], env=access.environment(), check=False)
    try:
        rows = json.loads(result.stdout or "[]")
    except ValueError:
        rows = None
    if not isinstance(rows, list) or not rows:
        raise StepFailedError(
            "etcdctl endpoint health gave no answer",
            task="etcdctl endpoint health",
            error=_tail(result.stderr),
        )
    return [
        EtcdEndpointHealth(
            endpoint=str(row.get("endpoint") or "?"),
            healthy=row.get("health") is True,
            error=_tail(str(row.get("error") or ""), 200),
        )
        for row in rows
        if isinstance(row, dict)
    ]


def snapshot_save(
    *, access: EtcdAccess, cluster: str, data_dir: Path, redis: Redis, job_id: str | None = None
) -> EtcdBackup:
    """Take a snapshot from the first healthy endpoint, check it, keep it and record it.

    Each endpoint's health is asked first: etcdctl 3.4's `snapshot save` waits forever on an
    endpoint that does not answer, while `endpoint health` gives up after the command timeout.
    """
    folder = backups_dir(data_dir=data_dir, cluster=cluster)
    backup_id = new_backup_id(redis=redis, cluster=cluster)
    final = snapshot_path(data_dir=data_dir, cluster=cluster, backup_id=backup_id)
    partial = folder / f".{final.name}.part"
    for endpoint in access.endpoints:
        single = access.model_copy(update={"endpoints": (endpoint,)})
        result = _etcdctl(["endpoint", "health"], env=single.environment(), check=False)
        if result.returncode == 0:
            result = _etcdctl(["snapshot", "save", str(partial)], env=single.environment(), check=False)
        if result.returncode == 0:
            break
    else:
        partial.unlink(missing_ok=True)
        raise StepFailedError(
            f"etcd of {cluster} gave no snapshot (tried {len(access.endpoints)} endpoint(s))",
            task="etcdctl snapshot save",
            error=_tail(result.stderr),
        )
    partial.chmod(0o600)
    partial.rename(final)
    return record_snapshot(path=final, backup_id=backup_id, cluster=cluster, redis=redis, job_id=job_id)


def new_backup_id(*, redis: Redis, cluster: str) -> str:
    """`<cluster>-<UTC date>-<time>`, with a counter if two snapshots share a second."""
    base = f"{cluster}-{utcnow():%Y%m%d-%H%M%S}"
    candidate, n = base, 1
    while redis.exists(keys.etcd_backup(candidate)):
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def record_snapshot(
    *, path: Path, backup_id: str, cluster: str, redis: Redis, job_id: str | None = None
) -> EtcdBackup:
    """Checksum a snapshot file in the cluster's backup folder and record it (also for snapshots a
    playbook fetched from a control-plane node)."""
    path.chmod(0o600)
    revision, total_keys = _snapshot_status(path)
    backup = EtcdBackup(
        id=backup_id,
        cluster=cluster,
        file=path.name,
        size=path.stat().st_size,
        sha256=file_sha256(path),
        created_at=utcnow(),
        job_id=job_id,
        revision=revision,
        total_keys=total_keys,
    )
    pipe = redis.pipeline(transaction=True)
    pipe.set(keys.etcd_backup(backup_id), backup.model_dump_json())
    pipe.zadd(keys.etcd_backups(cluster), {backup_id: backup.created_at.timestamp()})
    pipe.execute()
    return backup


def list_backups(*, redis: Redis, cluster: str) -> list[EtcdBackup]:
    """The cluster's backups, newest first."""
    members: list[bytes] = redis.zrevrange(keys.etcd_backups(cluster), 0, -1)  # type: ignore[assignment]
    ids = [raw.decode() for raw in members]
    raws: list[bytes | None] = redis.mget([keys.etcd_backup(i) for i in ids]) if ids else []  # type: ignore[assignment]
    return [EtcdBackup.model_validate_json(raw) for raw in raws if raw is not None]


def save_backup(*, redis: Redis, backup: EtcdBackup) -> None:
    """Write a changed record back (where it now lives)."""
    redis.set(keys.etcd_backup(backup.id), backup.model_dump_json())


def forget_backup(*, redis: Redis, backup: EtcdBackup) -> None:
    pipe = redis.pipeline(transaction=True)
    pipe.delete(keys.etcd_backup(backup.id))
    pipe.zrem(keys.etcd_backups(backup.cluster), backup.id)
    pipe.execute()


def get_backup(*, redis: Redis, backup_id: str, cluster: str) -> EtcdBackup:
    raw: bytes | None = redis.get(keys.etcd_backup(backup_id))  # type: ignore[assignment]
    backup = None if raw is None else EtcdBackup.model_validate_json(raw)
    if backup is None or backup.cluster != cluster:
        known = ", ".join(b.id for b in list_backups(redis=redis, cluster=cluster)[:5]) or "none yet"
        raise NotFoundError(f"{cluster} has no backup {backup_id} (latest: {known})")
    return backup


def verified_file(*, data_dir: Path, backup: EtcdBackup) -> Path:
    """The snapshot file, after checking it is still the bytes that were recorded. The record names
    the file; a name that is no plain file name under the cluster's folder is refused."""
    try:
        folder = backups_dir(data_dir=data_dir, cluster=backup.cluster)
        path = automation_values.path_inside(folder, backup.file, what="backup file")
    except automation_values.UnsafeValueError as exc:
        raise StepFailedError(f"backup {backup.id} names no file kobot would read", error=str(exc)) from None
    if not path.is_file():
        raise StepFailedError(f"the file of backup {backup.id} is missing", error=str(path))
    if file_sha256(path) != backup.sha256:
        raise StepFailedError(
            f"backup {backup.id} does not match its recorded checksum; it will not be restored",
            error=f"sha256 differs for {path.name}",
        )
    return path


def restore_snapshot(*, snapshot: Path, member_dir: Path, member: EtcdMember) -> None:
    """Write a new member data dir from a snapshot (the member is then started on it)."""
    if member_dir.exists() and any(member_dir.iterdir()):
        raise StepFailedError(f"etcd data dir {member_dir} is not empty; a restore never writes over data")
    result = _etcdctl(
        [
            "snapshot",
            "restore",
            str(snapshot),
            f"--data-dir={member_dir}",
            f"--name={member.name}",
            f"--initial-cluster={member.initial_cluster}",
            f"--initial-cluster-token={member.cluster_token}",
            f"--initial-advertise-peer-urls={member.peer_url}",
        ],
        env={"ETCDCTL_API": "3"},
        check=False,
    )
    if result.returncode != 0:
        raise StepFailedError(
            f"etcd snapshot restore into {member_dir.name} failed",
            task="etcdctl snapshot restore",
            error=_tail(result.stderr),
        )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


# --- internals ---------------------------------------------------------------------------------------
def _snapshot_status(path: Path) -> tuple[int | None, int | None]:
    result = _etcdctl(["snapshot", "status", str(path), "--write-out=json"], env={"ETCDCTL_API": "3"})
    status = json.loads(result.stdout or "{}")
    return status.get("revision"), status.get("totalKey")


def _etcdctl(args: list[str], *, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("etcdctl")
    if binary is None:
        raise StepFailedError("etcdctl is not installed on the kobot worker (Debian package etcd-client)")
    run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    try:
        result = subprocess.run(  # nosec B603  # etcdctl with an argv list, no shell
            [binary, *args],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=ETCDCTL_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise StepFailedError(
            f"etcdctl {args[0]} {args[1] if len(args) > 1 else ''} took longer than "
            f"{ETCDCTL_TIMEOUT_SECONDS:.0f}s",
            task=f"etcdctl {' '.join(args[:2])}",
        ) from None
    if check and result.returncode != 0:
        raise StepFailedError(
            f"etcdctl {' '.join(args[:2])} failed",
            task=f"etcdctl {' '.join(args[:2])}",
            error=_tail(result.stderr),
        )
    return result


def _tail(text: str, limit: int = 500) -> str:
    return text.strip()[-limit:]
