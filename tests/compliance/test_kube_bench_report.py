"""kube-bench's JSON report read into typed models: the fixtures in its own schema, its `--nototals`
form, and every way a report can be unreadable, each answered with the node and the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kobot import defaults
from kobot.errors import StepFailedError
from tests.compliance.reports import MASTER, NODE, raw, report
from workers.bundle.plan import plan_bundle
from workers.compliance.kube_bench import KUBE_BENCH_VERSION, READ_TASK, Status, parse_report, read_report


def test_master_report_reads_every_target_and_its_counts_match_kube_bench_totals() -> None:
    parsed = report(MASTER)
    assert [c.node_type for c in parsed.controls] == ["master", "etcd", "controlplane", "policies"]
    assert {c.version for c in parsed.controls} == {"cis-1.11"}
    assert parsed.totals is not None
    for total, field in (("pass", "total_pass"), ("fail", "total_fail"), ("warn", "total_warn")):
        counted = sum(
            1 for c in parsed.controls for g in c.tests for r in g.results if r.status.value.lower() == total
        )
        assert counted == getattr(parsed.totals, field), total
    for controls in parsed.controls:
        for group in controls.tests:
            assert group.pass_ == sum(r.status is Status.PASS for r in group.results)


def test_fields_without_json_tags_keep_kube_bench_go_names() -> None:
    """AuditEnv, AuditConfig and IsMultiple have no json tag in check.go, so they appear as Go names."""
    first = raw(MASTER)["Controls"][0]["tests"][0]["results"][0]
    assert {"AuditEnv", "AuditConfig", "IsMultiple", "test_number", "status"} <= set(first)
    check = report(MASTER).controls[0].tests[0].results[0]
    assert check.test_number == first["test_number"] == "1.1.1"
    assert check.is_multiple is first["IsMultiple"]
    assert check.test_info == [check.remediation]


def test_failed_checks_carry_their_remediation() -> None:
    failed = [r for c in report(NODE).controls for g in c.tests for r in g.results if r.status is Status.FAIL]
    assert [r.test_number for r in failed] == ["4.1.1", "4.2.6"]
    assert all(r.remediation.strip() for r in failed)


def test_nototals_form_is_a_bare_list_of_controls() -> None:
    bare = json.dumps(raw(MASTER)["Controls"]).encode()
    parsed = parse_report(bare, node="master-1")
    assert parsed.totals is None
    assert len(parsed.controls) == 4


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"{not json", "it is not JSON"),
        (b"\xff\xfe", "it is not JSON"),
        (b'"text"', "it has no `Controls` list"),
        (b'{"controls": []}', "it has no `Controls` list"),
        (b'{"Controls": []}', "it holds no checks"),
        (b'{"Controls": [{"id": "1"}]}', "Controls.0.version: Field required"),
    ],
)
def test_unreadable_report_names_the_node_and_why(data: bytes, why: str) -> None:
    with pytest.raises(StepFailedError) as caught:
        parse_report(data, node="worker-2")
    assert caught.value.user_message.startswith("the kube-bench report of worker-2 cannot be read: ")
    assert why in caught.value.user_message
    assert (caught.value.task, caught.value.host) == (READ_TASK, "worker-2")


def test_an_unknown_status_is_refused_with_its_place() -> None:
    document = raw(NODE)
    document["Controls"][0]["tests"][0]["results"][0]["status"] = "MAYBE"
    with pytest.raises(StepFailedError) as caught:
        parse_report(json.dumps(document).encode(), node="worker-1")
    assert "Controls.0.tests.0.results.0.status" in caught.value.user_message


def test_a_report_past_the_size_limit_is_refused_unread() -> None:
    with pytest.raises(StepFailedError, match="larger than"):
        parse_report(b" " * (defaults.CIS_REPORT_MAX_BYTES + 1), node="worker-1")


def test_the_role_and_the_offline_bundle_use_the_release_these_models_read() -> None:
    defaults_file = Path(__file__).resolve().parents[2] / "playbooks/roles/cis_scan/defaults/main.yml"
    role = yaml.safe_load(defaults_file.read_text())
    assert str(role["kube_bench_version"]) == KUBE_BENCH_VERSION
    assert (
        role["kube_bench_archive"] == "kube-bench_{{ kube_bench_version }}_linux_{{ kube_bench_arch }}.tar.gz"
    )
    assert "offline_files_url ~ '/kube-bench/v' ~ kube_bench_version" in role["kube_bench_base_url"]
    bundle = plan_bundle(version="1.31.4", os=["ubuntu22.04"], arch=["amd64"], cni="calico")
    [bench] = [f for f in bundle.files if f.name == "kube-bench"]
    assert (
        bench.path == f"kube-bench/v{KUBE_BENCH_VERSION}/kube-bench_{KUBE_BENCH_VERSION}_linux_amd64.tar.gz"
    )
    assert bench.checksum.url is not None
    assert bench.checksum.url.endswith(f"/kube-bench_{KUBE_BENCH_VERSION}_checksums.txt")


def test_a_report_file_far_over_the_bound_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A sparse 64 GiB file: loading it first (then checking its size) would exhaust kobot's memory."""
    huge = tmp_path / "master-1.json"
    with huge.open("wb") as sparse:
        sparse.truncate(64 * 1024**3)
    with pytest.raises(StepFailedError, match=f"larger than {defaults.CIS_REPORT_MAX_BYTES} bytes"):
        read_report(huge, node="master-1")
    assert read_report(MASTER, node="master-1").controls, "a report within the bound reads as before"
