"""A scan as kobot keeps it: sums per section over the nodes, failed checks with their nodes, the
difference from the previous scan, the card chat shows, and the bounded history in the store (real
Valkey)."""

from __future__ import annotations

from datetime import timedelta

from redis import Redis

from kobot import defaults
from kobot.messages import Tone
from tests.compliance.reports import MASTER, MASTER_HARDENED, NODE, report
from workers.compliance.cards import change_card, scan_card, trimmed
from workers.compliance.results import ScanDiff, ScanResult, ScanStore, build_result, diff_scans


def _scan(scan_id: str, **reports: object) -> ScanResult:
    return build_result(
        scan_id=scan_id,
        cluster="prod",
        reports={node: report(path, node=node) for node, path in reports.items()},  # type: ignore[arg-type]
        kube_bench_version="0.15.6",
    )


def test_sections_sum_over_nodes_and_failures_name_their_nodes() -> None:
    scan = _scan("1", **{"master-1": MASTER, "master-2": MASTER, "worker-1": NODE})
    master, node = report(MASTER).totals, report(NODE).totals
    assert master is not None and node is not None
    assert scan.totals() == {
        "pass": 2 * master.total_pass + node.total_pass,
        "fail": 2 * master.total_fail + node.total_fail,
        "warn": 2 * master.total_warn + node.total_warn,
        "info": 0,
    }
    api_server = next(s for s in scan.sections if s.section == "1.2")
    assert (api_server.node_type, api_server.fail) == ("master", 4)
    assert [c.id for c in scan.failed] == ["1.1.12", "1.2.5", "1.2.16", "4.1.1", "4.2.6"], "numeric order"
    assert {c.id: c.nodes for c in scan.failed}["1.2.5"] == ["master-1", "master-2"]
    assert scan.benchmarks == ["cis-1.11"]


def test_diff_names_newly_failing_and_fixed_checks_per_node() -> None:
    before = _scan("1", **{"master-1": MASTER, "master-2": MASTER})
    after = _scan("2", **{"master-1": MASTER_HARDENED, "master-2": MASTER})
    diff = diff_scans(previous=before, current=after)
    assert diff.previous_id == "1"
    assert diff.newly_failing == {"1.2.15": ["master-1"]}
    assert diff.fixed == {"1.1.12": ["master-1"], "1.2.16": ["master-1"]}
    assert diff_scans(previous=after, current=after).changed is False
    assert diff_scans(previous=None, current=after).previous_id is None


def test_a_node_that_came_or_went_is_no_change() -> None:
    before = _scan("1", **{"master-1": MASTER, "worker-1": NODE})
    after = _scan("2", **{"master-1": MASTER, "worker-2": NODE})
    assert not diff_scans(previous=before, current=after).changed


def test_card_shows_sections_failures_with_trimmed_fixes_and_the_change() -> None:
    after = _scan("7", **{"master-1": MASTER_HARDENED, "worker-1": NODE})
    after.diff = diff_scans(previous=_scan("6", **{"master-1": MASTER, "worker-1": NODE}), current=after)
    card = scan_card(after)
    body = card.body or ""
    assert card.title == "CIS scan 7 of prod"
    assert card.tone is Tone.WARNING
    assert "  1.2 API Server [master]: " in body
    assert "  4.2 Kubelet [node]: " in body
    assert "Since scan 6:\n  newly failing 1.2.15 on master-1\n  fixed 1.1.12 on master-1" in body
    assert "• 4.1.1 " in body and "on worker-1" in body
    fixes = [line for line in body.splitlines() if line.startswith("  fix: ")]
    assert len(fixes) == len(after.failed)
    assert all(len(line) <= len("  fix: ") + defaults.CIS_REMEDIATION_CHARS_MAX for line in fixes)
    assert [f.label for f in card.fields] == ["Pass", "Fail", "Warn", "Info"]
    assert card.fields[1].value == str(after.totals()["fail"])


def test_card_lists_at_most_the_limit_of_failed_checks() -> None:
    scan = _scan("3", **{"master-1": MASTER, "worker-1": NODE})
    scan.failed = scan.failed * defaults.CIS_FAILED_SHOWN_MAX
    body = scan_card(scan).body or ""
    assert body.count("\n• ") == defaults.CIS_FAILED_SHOWN_MAX
    assert f"… and {len(scan.failed) - defaults.CIS_FAILED_SHOWN_MAX} more failed checks" in body


def test_change_card_says_only_the_change_and_where_the_rest_is() -> None:
    after = _scan("9", **{"master-1": MASTER_HARDENED})
    after.diff = diff_scans(previous=_scan("8", **{"master-1": MASTER}), current=after)
    card = change_card(after)
    assert card.title == "CIS scan of prod changed"
    assert card.body == (
        "Since scan 8:\n  newly failing 1.2.15 on master-1\n"
        "  fixed 1.1.12 on master-1\n  fixed 1.2.16 on master-1"
    )
    assert card.footer == "show scan prod 9"


def test_change_card_of_a_big_cluster_stays_short() -> None:
    """A first hardening run on 200 nodes may fix hundreds of checks on every node: counted, not listed."""
    nodes = [f"worker-{i}" for i in range(200)]
    after = _scan("11", **{"master-1": MASTER})
    after.diff = ScanDiff(
        previous_id="10",
        newly_failing={"4.2.6": nodes[:2]},
        fixed={f"1.{i}.1": nodes for i in range(300)},
    )
    body = change_card(after).body or ""
    lines = body.split("\n")
    assert lines[1] == "  newly failing 4.2.6 on worker-0, worker-1"
    assert lines[2] == "  fixed 1.0.1 on 200 nodes"
    assert sum(line.startswith("  fixed ") for line in lines) == defaults.CIS_CHANGES_SHOWN_MAX
    assert lines[-1] == f"  … and {300 - defaults.CIS_CHANGES_SHOWN_MAX} more fixed checks"
    assert len(body) < 1000
    scan = _scan("12", **{"master-1": MASTER})
    scan.failed = [scan.failed[0].model_copy(update={"nodes": nodes})]
    assert f"— on {len(nodes)} nodes" in (scan_card(scan).body or "")


def test_trimmed_cuts_at_a_word_and_flattens_lines() -> None:
    assert trimmed("chmod 600\n  /etc/kubernetes/admin.conf\n") == "chmod 600 /etc/kubernetes/admin.conf"
    long = "word " * 200
    cut = trimmed(long, limit=50)
    assert len(cut) <= 50 and cut.endswith("…") and not cut.endswith(" …")


def test_store_keeps_the_newest_scans_and_a_retry_replaces_its_own(redis: Redis) -> None:
    store = ScanStore(redis)
    base = _scan("1", **{"master-1": MASTER})
    total = defaults.CIS_SCAN_HISTORY_MAX + 3
    for n in range(1, total + 1):
        store.save(
            base.model_copy(update={"id": str(n), "finished_at": base.finished_at + timedelta(minutes=n)})
        )
    ids = store.ids("prod")
    assert ids == [str(n) for n in range(total, 3, -1)], "newest first, the oldest dropped"
    assert store.get(cluster="prod", scan_id="1") is None
    assert redis.hlen("kobot:cis:scans:prod") == defaults.CIS_SCAN_HISTORY_MAX
    newest = store.latest("prod")
    assert newest is not None and newest.id == str(total)
    previous = store.latest("prod", before=str(total))
    assert previous is not None and previous.id == str(total - 1)
    store.save(newest)
    assert store.ids("prod") == ids, "saving the same scan again adds nothing"
    again = store.get(cluster="prod", scan_id=str(total))
    assert again is not None and again.model_dump() == newest.model_dump()
