"""How a command becomes a job: the params it passes, the hash an approval binds to, the day-2 job.

A mutating command answers with a `SubmitJob` whose plan lines say exactly what will change and whose
hash binds an approval to that change.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

from commands.context import CommandContext, SubmitJob
from kobot.clusters import ClusterRecord, ClusterState
from kobot.errors import ConflictError, KobotError
from kobot.job_records import JobKind
from workers.operations import OPERATIONS


def plan_hash(payload: dict[str, Any]) -> str:
    """Stable hash of what a job will do; an approval is valid only for the same hash."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


RECORDED_CONTEXT_PARAMS = frozenset({"offline_repo"})
"""Params a handler adds from what kobot had recorded when the job was asked for (the offline repository
`setup repository` recorded), not from the command's text: a retry resumes with the stored ones, which the
approval showed, so they are not read again from the text."""


def job_params(args: BaseModel) -> dict[str, Any]:
    """The arguments a job runs with: all but `break_glass`, which unlocks the command, not the job."""
    return {k: v for k, v in args.model_dump(mode="json").items() if k != "break_glass"}


def require_operation(kind: str) -> None:
    """Refuse a command whose job this kobot has no operation for, before anyone approves it."""
    if kind not in OPERATIONS:
        raise KobotError(f"`{kind}` is understood, but this kobot version cannot run it yet")


def day2_job(ctx: CommandContext, args: BaseModel, *, kind: JobKind, lines: list[str]) -> SubmitJob:
    """A job that changes an existing cluster; its hash covers the cluster's nodes and version now, so an
    approval given for one state of the cluster does not carry over to another."""
    require_operation(kind.value)
    name = ctx.cluster()
    record = ctx.runtime.clusters.require(name)
    require_own_hosts(record, kind=kind.value)
    if kind is not JobKind.CLUSTER_DELETE:
        require_changeable(ctx, record)
    params = job_params(args)
    state = {"nodes": [(n.name, n.role, n.address) for n in record.nodes], "version": record.version}
    digest = plan_hash({"kind": kind.value, "cluster": name, "params": params, "state": state})
    return SubmitJob(
        kind=kind.value,
        cluster=name,
        params=params,
        title=f"{kind.value} {name}",
        plan_lines=tuple(lines),
        plan_hash=digest,
    )


IMPORTED_CLUSTER_KINDS: frozenset[str] = frozenset(
    {JobKind.CERTS_RENEW.value, JobKind.CIS_SCAN.value, JobKind.ETCD_BACKUP.value}
)
"""The only jobs kobot runs on a cluster it imported: they read or renew what is there and reconfigure
nothing, so they do not depend on the cluster's configuration, which kobot's record does not describe."""


def require_own_hosts(record: ClusterRecord, *, kind: str) -> None:
    """Refuse a job on an imported cluster that kobot cannot run there: every job that would reconfigure
    it (its record holds kobot's defaults for network plugin, address ranges, kube-proxy mode, OS and
    ingress, and every inventory is built from that record), and without SSH access also those that read
    or renew over SSH."""
    info = record.imported
    if info is None:
        return
    if kind not in IMPORTED_CLUSTER_KINDS:
        allowed = ", ".join(f"`{k}`" for k in sorted(IMPORTED_CLUSTER_KINDS))
        raise ConflictError(
            f"{record.name} was imported: kobot did not build it and does not know its configuration "
            "(network plugin, pod and service ranges, kube-proxy mode, OS, ingress), so it will not run "
            f"`{kind}` there, which would apply kobot's defaults instead. On an imported cluster kobot runs "
            f"only {allowed} (with SSH access) and what needs only the API: kubectl, health checks, alerts, "
            "notices, addons and apps. Change the cluster itself with the tools that built it."
        )
    if info.ssh_user is None:
        raise ConflictError(
            f"{record.name} was imported: kobot holds only its kubeconfig, no SSH access to its hosts and no "
            f"Terraform state, so it cannot run `{kind}` there. What needs only the API works: kubectl, "
            "health checks, alerts, notices, addons and apps. An admin gives SSH access with "
            f"`kobot attach-ssh {record.name} --ssh-key FILE`."
        )


def require_changeable(ctx: CommandContext, record: ClusterRecord) -> None:
    """Refuse a Day 2 change of a cluster that is not there to change, at once and with what to do,
    instead of queueing a job that fails at its first step. A create still running is fine: the cluster
    lock queues the change behind it."""
    name = record.name
    if record.state is ClusterState.CREATING:
        create = ctx.runtime.jobs.records.get(record.creating_job) if record.creating_job else None
        if create is not None and not create.state.finished:
            return
        if create is None:
            raise KobotError(
                f"{name} was never finished and its create job is gone: `delete cluster {name}`."
            )
        raise KobotError(
            f"{name} was never finished: its create (job {create.job_id}) {create.state.value}. "
            f"Finish it with `retry job {create.job_id}` or remove it with `delete cluster {name}`."
        )
    if record.state is ClusterState.FAILED:
        raise KobotError(
            f"{name} is failed: its last create or delete did not finish (see `show cluster {name}`). "
            f"Retry that job, or remove the cluster with `delete cluster {name}`."
        )
    if record.state is ClusterState.DELETING:
        raise KobotError(f"{name} is being deleted; nothing else can change it now.")
