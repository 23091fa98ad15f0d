"""kube-bench's JSON report, as `kube-bench run --json` writes it, read into typed models.

The shape is kube-bench's own (check/controls.go and check/check.go): the top level is
`{"Controls": [...], "Totals": {...}}` (or a bare list of controls with `--nototals`); each control
has `id`, `version` (the benchmark, e.g. `cis-1.11`), `detected_version`, `text`, `node_type` and
`tests`, a list of groups (`section`, `type`, `pass`, `fail`, `warn`, `info`, `desc`, `results`);
each result is one check (`test_number`, `test_desc`, `audit`, `AuditEnv`, `AuditConfig`, `type`,
`remediation`, `test_info`, `status`, `actual_value`, `scored`, `IsMultiple`, `expected_result`,
`reason`). Fields kube-bench adds later are ignored; fields kobot reads must be there.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

from pydantic import ConfigDict, Field, ValidationError

from kobot import defaults
from kobot.deferred_models import DeferredModel
from kobot.errors import StepFailedError

KUBE_BENCH_VERSION = "0.15.6"
"""The kube-bench release the scan installs (the cis_scan role's `kube_bench_version`, passed to it) and
whose JSON these models read. The offline bundle's plan (workers.bundle.plan) carries its archives and
checksums file to `kube-bench/v<version>/` on the offline files server, where the role looks."""

READ_TASK = "read kube-bench report"
"""The task a report that cannot be read is blamed on (there is no Ansible task for it)."""


class Status(str, Enum):
    """A check's outcome (kube-bench's State)."""

    PASS = "PASS"  # nosec B105  # a check outcome, not a password
    FAIL = "FAIL"
    WARN = "WARN"
    INFO = "INFO"


class _Report(DeferredModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class CheckResult(_Report):
    """One check on one node."""

    test_number: str
    test_desc: str
    audit: str = ""
    audit_env: str = Field(default="", alias="AuditEnv")
    audit_config: str = Field(default="", alias="AuditConfig")
    type: str = ""
    """`manual`, `skip` or empty (automated)."""
    remediation: str = ""
    test_info: list[str] = Field(default_factory=list)
    status: Status
    actual_value: str = ""
    scored: bool = False
    is_multiple: bool = Field(default=False, alias="IsMultiple")
    expected_result: str = ""
    reason: str = ""


class Group(_Report):
    """A section of a benchmark (`1.1 Control Plane Node Configuration Files`) and its counts."""

    section: str
    type: str = ""
    pass_: int = Field(alias="pass")
    fail: int
    warn: int
    info: int = 0
    desc: str
    results: list[CheckResult] = Field(default_factory=list)


class Controls(_Report):
    """One target's checks (master, etcd, controlplane, policies, node) as run on a node."""

    id: str
    version: str
    """The benchmark, e.g. `cis-1.11`."""
    detected_version: str = ""
    text: str
    node_type: str
    tests: list[Group] = Field(default_factory=list)
    total_pass: int
    total_fail: int
    total_warn: int
    total_info: int = 0


class Totals(_Report):
    total_pass: int
    total_fail: int
    total_warn: int
    total_info: int = 0


class KubeBenchReport(_Report):
    """`kube-bench run --json`: every target run on one node, with the totals over them."""

    controls: list[Controls] = Field(alias="Controls")
    totals: Totals | None = Field(default=None, alias="Totals")


def read_report(path: Path, *, node: str) -> KubeBenchReport:
    """The node's fetched report file: its size is looked at before a byte is read, so a report far
    over the bound is refused without being loaded."""
    if path.stat().st_size > defaults.CIS_REPORT_MAX_BYTES:
        raise _unreadable(node, f"it is larger than {defaults.CIS_REPORT_MAX_BYTES} bytes")
    with path.open("rb") as report:
        # read one byte past the bound: a file that grew after the stat is still refused
        return parse_report(report.read(defaults.CIS_REPORT_MAX_BYTES + 1), node=node)


def parse_report(data: bytes, *, node: str) -> KubeBenchReport:
    """A node's report, or StepFailedError saying (for chat) why it is not kube-bench's JSON."""
    if len(data) > defaults.CIS_REPORT_MAX_BYTES:
        raise _unreadable(node, f"it is larger than {defaults.CIS_REPORT_MAX_BYTES} bytes")
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _unreadable(node, f"it is not JSON ({_first_line(exc)})") from None
    if isinstance(raw, list):
        raw = {"Controls": raw}  # `--nototals`
    if not isinstance(raw, dict) or "Controls" not in raw:
        raise _unreadable(node, "it has no `Controls` list (is it `kube-bench run --json` output?)")
    try:
        report = KubeBenchReport.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise _unreadable(node, f"{where}: {first['msg']}") from None
    if not report.controls:
        raise _unreadable(node, "it holds no checks (kube-bench ran no target)")
    return report


def _unreadable(node: str, why: str) -> StepFailedError:
    return StepFailedError(
        f"the kube-bench report of {node} cannot be read: {why}", task=READ_TASK, host=node, error=why
    )


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200]
