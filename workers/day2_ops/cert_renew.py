"""Renew the control plane's certificates: cluster_cert_renew.yml one master at a time (kubeadm certs
renew, each static pod restarted before the next node starts), kobot's stored admin kubeconfig replaced
by the renewed one (not on an imported cluster: `IMPORTED_CLUSTER_VARS`), and every certificate's expiry
read back from the nodes and shown."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from kobot import defaults
from kobot.clusters import ClusterStore
from kobot.errors import StepFailedError
from kobot.job_records import JobKind, JobSpec
from workers import playbook_names
from workers.cluster_inputs import inventory_path, play_vars
from workers.cluster_secrets import KUBECONFIG_SECRET, cluster_secrets_for
from workers.cluster_steps import render_inventory_step, wait_for_ssh_step
from workers.context import StepContext
from workers.day2_ops.cert_renew_expiry import expiry_lines, read_report
from workers.day2_ops.history import day2_operation
from workers.day2_ops.kube_access import kube_for
from workers.day2_ops.progress import say
from workers.operations import Operation, Step, operation

REPORT_DIR = "certificates"
"""Copies of the nodes' certificates (public parts) in the job's work dir, `<node>/<file>`."""
RENEWED_KUBECONFIG = "admin.conf.renewed"
"""Where the playbook fetches the renewed admin kubeconfig; encrypted into the store, then removed."""
OUTCOME_FILE = "cert-renew.json"
"""What the job says at its end (expiry lines, kubeconfig refreshed), kept for a retry in a new process."""
IMPORTED_CLUSTER_VARS: dict[str, object] = {
    "kubeconfig_dest": "",
    "cert_renew_root_kubeconfig": False,
    "metrics_server_enabled": False,
    "cert_renew_approve_serving_csrs": False,
}
"""A renewal on a cluster kobot imported renews the certificates only: the kubeconfig the admin gave is
kept (the node's admin.conf has another server address and more privilege), root's on the nodes is left
alone, and addons kobot never installed (metrics-server's TLS) or kubelet serving CSRs are not touched."""


def renew_step(ctx: StepContext) -> None:
    report = ctx.work_dir / REPORT_DIR
    shutil.rmtree(report, ignore_errors=True)  # an earlier attempt's copies must not be read back as new
    fetched = ctx.work_dir / RENEWED_KUBECONFIG
    imported = ClusterStore(ctx.redis).require(ctx.cluster).imported is not None
    extravars = {
        **play_vars(ctx),
        "cert_renew_force": bool(ctx.params.get("force", False)),
        "cert_renew_report_dir": str(report),
        "kubeconfig_dest": str(fetched),
    }
    if imported:
        extravars.update(IMPORTED_CLUSTER_VARS)
        _save_outcome(ctx, {"kubeconfig_kept": True})
    try:
        ctx.run_playbook(
            playbook_names.CLUSTER_CERT_RENEW, inventory=inventory_path(ctx), extravars=extravars
        )
    finally:
        if imported:  # nothing was asked to be fetched; should anything be there, it is not stored
            fetched.unlink(missing_ok=True)
        else:  # also when a later master failed: the first one's renewed kubeconfig is kept, not dropped
            _keep_renewed_kubeconfig(ctx, fetched)


def _keep_renewed_kubeconfig(ctx: StepContext, fetched: Path) -> None:
    try:
        if fetched.is_file() and fetched.stat().st_size > 0:
            cluster_secrets_for(ctx).put(
                cluster=ctx.cluster, name=KUBECONFIG_SECRET, value=fetched.read_bytes()
            )
            say(ctx, "the renewed admin kubeconfig replaced kobot's (stored encrypted)")
            _save_outcome(ctx, {"kubeconfig_refreshed": True})  # a retry that renews nothing keeps it said
    finally:
        fetched.unlink(missing_ok=True)


def verify_step(ctx: StepContext) -> None:
    """Every certificate read back is valid beyond the renewal window (renewed, or not due), and the API
    answers with the kubeconfig kobot now holds."""
    expiries = read_report(ctx.work_dir / REPORT_DIR)
    if not expiries:
        raise StepFailedError(
            f"no certificate of {ctx.cluster}'s control plane was read back",
            error="cluster_cert_renew.yml copied none: are the masters kubeadm nodes?",
        )
    window = int(
        ctx.settings.ansible_extra_vars.get("kube_cert_renew_before_days", defaults.CERT_RENEW_BEFORE_DAYS)
    )
    now = datetime.now(UTC)
    due = [e for e in expiries if e.days_left(now=now) < window]
    if due:
        names = ", ".join(f"{e.node}:{e.file} ({e.not_after:%Y-%m-%d})" for e in due)
        raise StepFailedError(
            f"after the renewal these still expire within {window} days: {names}",
            error="kubeadm certs renew did not renew them; see the renew step's tasks",
        )
    lines = expiry_lines(expiries, now=now)
    for line in lines:
        say(ctx, line)
    with kube_for(ctx) as kube:
        kube.list_nodes()
    _save_outcome(ctx, {"expiry": lines})


def final_note(ctx: StepContext) -> str | None:
    """The expiry read back, one clause per master, and whether kobot's kubeconfig was replaced."""
    outcome = _load_outcome(ctx)
    found = outcome.get("expiry")
    expiry = found if isinstance(found, list) else []
    note = "certificates: " + "; ".join(str(line) for line in expiry) if expiry else None
    if outcome.get("kubeconfig_kept"):
        kept = "kobot kept the kubeconfig given at import (an imported cluster's is never replaced)"
        note = f"{note}; {kept}" if note else kept
    elif outcome.get("kubeconfig_refreshed"):
        note = f"{note}; kobot's admin kubeconfig refreshed" if note else "kobot's admin kubeconfig refreshed"
    return note


def _save_outcome(ctx: StepContext, values: dict[str, object]) -> None:
    path = ctx.work_dir / OUTCOME_FILE
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps({**_load_outcome(ctx), **values}))
    partial.replace(path)


def _load_outcome(ctx: StepContext) -> dict[str, object]:
    path = ctx.work_dir / OUTCOME_FILE
    try:
        loaded = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


@operation(JobKind.CERTS_RENEW.value)
def certs_renew(spec: JobSpec) -> Operation:
    steps = [
        Step("inventory", "Render inventory", render_inventory_step),
        Step("wait_ssh", "Wait for SSH", wait_for_ssh_step),
        Step("renew", "Renew certificates, one master at a time", renew_step),
        Step("verify", "Read the certificates' expiry back", verify_step),
    ]
    return replace(day2_operation(JobKind.CERTS_RENEW, steps), final_note_from=final_note)
