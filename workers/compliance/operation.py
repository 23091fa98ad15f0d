"""The cis.scan operation: render the inventory, run kube-bench on every node, read and keep the results."""

from __future__ import annotations

from kobot.job_records import JobKind, JobSpec
from workers.cluster_steps import render_inventory_step
from workers.compliance.scan import collect_step, record_step, scan_note
from workers.day2_ops.history import history_hook
from workers.operations import Operation, Step, operation


@operation(JobKind.CIS_SCAN.value)
def cis_scan(spec: JobSpec) -> Operation:
    """Reads the nodes only: the cluster's state is left as it is, whatever the outcome."""
    steps = (
        Step("inventory", "Render inventory", render_inventory_step),
        Step("collect", "Run kube-bench on every node", collect_step),
        Step("record", "Read and keep the results", record_step),
    )
    return Operation(
        kind=JobKind.CIS_SCAN.value,
        steps=steps,
        on_success=history_hook(JobKind.CIS_SCAN, "succeeded"),
        on_failure=history_hook(JobKind.CIS_SCAN, "failed"),
        final_note_from=scan_note,
    )
