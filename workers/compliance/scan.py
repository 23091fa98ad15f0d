"""The cis.scan job: kube-bench on every node (cis_scan.yml), its reports read back, the scan kept and
compared with the cluster's previous one."""

from __future__ import annotations

import shutil
from pathlib import Path

from kobot import defaults
from kobot.clusters import ClusterStore
from kobot.errors import StepFailedError
from workers import playbook_names
from workers.cluster_inputs import inventory_path, play_vars
from workers.compliance.cards import diff_lines
from workers.compliance.kube_bench import KUBE_BENCH_VERSION, READ_TASK, KubeBenchReport, read_report
from workers.compliance.results import ScanStore, build_result, diff_scans
from workers.context import StepContext
from workers.day2_ops.progress import say

REPORTS_DIR = "cis"
"""Folder of the job's work dir the nodes' reports are fetched to, one `<node>.json` each."""


def reports_dir(ctx: StepContext) -> Path:
    return ctx.work_dir / REPORTS_DIR


def collect_step(ctx: StepContext) -> None:
    """Run kube-bench on every node and fetch each report; a retry starts with an empty folder, so no
    report of an earlier attempt is read as this one's."""
    folder = reports_dir(ctx)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700)
    ctx.run_playbook(
        playbook_names.CIS_SCAN,
        inventory=inventory_path(ctx),
        extravars={
            **play_vars(ctx),
            "cis_scan_dest": str(folder),
            "kube_bench_version": KUBE_BENCH_VERSION,
            "kube_bench_timeout_seconds": defaults.CIS_SCAN_TIMEOUT_SECONDS,
        },
    )


def record_step(ctx: StepContext) -> None:
    """Read every node's report (one missing or unreadable fails the step, naming the node), keep the
    scan and say how it differs from the previous one."""
    folder = reports_dir(ctx)
    nodes = [node.name for node in ClusterStore(ctx.redis).require(ctx.cluster).nodes]
    reports: dict[str, KubeBenchReport] = {}
    for node in nodes:
        path = folder / f"{node}.json"
        if not path.is_file():
            raise StepFailedError(
                f"no kube-bench report came back from {node}", task=READ_TASK, host=node, error="no report"
            )
        reports[node] = read_report(path, node=node)
    store = ScanStore(ctx.redis)
    result = build_result(
        scan_id=ctx.job_id, cluster=ctx.cluster, reports=reports, kube_bench_version=KUBE_BENCH_VERSION
    )
    result.scheduled = bool(ctx.params.get("scheduled"))
    result.diff = diff_scans(previous=store.latest(ctx.cluster, before=ctx.job_id), current=result)
    store.save(result)
    totals = result.totals()
    say(ctx, "scan: " + ", ".join(f"{count} {label}" for label, count in totals.items()))


def scan_note(ctx: StepContext) -> str | None:
    """The finished job's summary: totals, the change since the last scan, and where the rest is."""
    result = ScanStore(ctx.redis).get(cluster=ctx.cluster, scan_id=ctx.job_id)
    if result is None:
        return None
    totals = result.totals()
    counted = ", ".join(f"{count} {label}" for label, count in totals.items())
    return "\n".join(
        [
            f"CIS scan: {counted} on {len(result.nodes)} node(s)",
            *diff_lines(result.diff),
            f"`show scan {ctx.cluster} {result.id}` lists the failed checks and how to fix them",
        ]
    )
