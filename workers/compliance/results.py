"""A CIS scan as kobot keeps it: counts per benchmark section, the failed checks with the nodes they
failed on, and how it differs from the cluster's previous scan. Kept per cluster in Redis, newest
CIS_SCAN_HISTORY_MAX scans only."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import ConfigDict, Field
from redis import Redis

from kobot import defaults, keys
from kobot.clock import utcnow
from kobot.deferred_models import DeferredModel
from workers.compliance.kube_bench import KubeBenchReport, Status


class SectionCounts(DeferredModel):
    """One benchmark section summed over the nodes that ran it."""

    node_type: str
    section: str
    desc: str
    pass_: int = Field(default=0, alias="pass")
    fail: int = 0
    warn: int = 0
    info: int = 0
    model_config = ConfigDict(populate_by_name=True)


class FailedCheck(DeferredModel):
    """A check that failed, on which nodes, and kube-bench's remediation text (whole)."""

    id: str
    text: str
    scored: bool
    remediation: str
    nodes: list[str]


class ScanDiff(DeferredModel):
    """Against the previous scan: `check id -> nodes` that newly fail, and that no longer fail."""

    previous_id: str | None
    newly_failing: dict[str, list[str]] = Field(default_factory=dict)
    fixed: dict[str, list[str]] = Field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.newly_failing or self.fixed)


class ScanResult(DeferredModel):
    """One scan of one cluster; its id is the job's."""

    id: str
    cluster: str
    finished_at: datetime = Field(default_factory=utcnow)
    kube_bench_version: str
    benchmarks: list[str]
    """The benchmark versions kube-bench chose (e.g. `cis-1.11`)."""
    nodes: list[str]
    sections: list[SectionCounts]
    failed: list[FailedCheck]
    diff: ScanDiff = Field(default_factory=lambda: ScanDiff(previous_id=None))
    scheduled: bool = False

    def totals(self) -> dict[str, int]:
        return {
            "pass": sum(s.pass_ for s in self.sections),
            "fail": sum(s.fail for s in self.sections),
            "warn": sum(s.warn for s in self.sections),
            "info": sum(s.info for s in self.sections),
        }

    def failing_pairs(self) -> set[tuple[str, str]]:
        return {(check.id, node) for check in self.failed for node in check.nodes}


def build_result(
    *, scan_id: str, cluster: str, reports: Mapping[str, KubeBenchReport], kube_bench_version: str
) -> ScanResult:
    """Sum the nodes' reports per section and gather each failed check with the nodes it failed on."""
    sections: dict[tuple[str, str], SectionCounts] = {}
    failed: dict[str, FailedCheck] = {}
    benchmarks: set[str] = set()
    for node in sorted(reports):
        for controls in reports[node].controls:
            benchmarks.add(controls.version)
            for group in controls.tests:
                key = (controls.node_type, group.section)
                counts = sections.setdefault(
                    key, SectionCounts(node_type=controls.node_type, section=group.section, desc=group.desc)
                )
                counts.pass_ += group.pass_
                counts.fail += group.fail
                counts.warn += group.warn
                counts.info += group.info
                for check in group.results:
                    if check.status is not Status.FAIL:
                        continue
                    entry = failed.setdefault(
                        check.test_number,
                        FailedCheck(
                            id=check.test_number,
                            text=check.test_desc,
                            scored=check.scored,
                            remediation=check.remediation.strip(),
                            nodes=[],
                        ),
                    )
                    if node not in entry.nodes:
                        entry.nodes.append(node)
    return ScanResult(
        id=scan_id,
        cluster=cluster,
        kube_bench_version=kube_bench_version,
        benchmarks=sorted(benchmarks),
        nodes=sorted(reports),
        sections=sorted(sections.values(), key=lambda s: _check_order(s.section)),
        failed=sorted(failed.values(), key=lambda c: _check_order(c.id)),
    )


def diff_scans(*, previous: ScanResult | None, current: ScanResult) -> ScanDiff:
    """What fails now and did not before, and what failed before and passes now. A node that was not
    in both scans is neither: its checks did not start or stop failing, the node came or went."""
    if previous is None:
        return ScanDiff(previous_id=None)
    both = set(previous.nodes) & set(current.nodes)
    before = {pair for pair in previous.failing_pairs() if pair[1] in both}
    now = {pair for pair in current.failing_pairs() if pair[1] in both}
    return ScanDiff(
        previous_id=previous.id, newly_failing=_by_check(now - before), fixed=_by_check(before - now)
    )


def _by_check(pairs: set[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for check, node in sorted(pairs, key=lambda p: (_check_order(p[0]), p[1])):
        grouped.setdefault(check, []).append(node)
    return grouped


def _check_order(check_id: str) -> tuple[tuple[int, str], ...]:
    """`1.2.10` after `1.2.9`: numeric parts as numbers."""
    return tuple((int(part), "") if part.isdigit() else (0, part) for part in check_id.split("."))


class ScanStore:
    """A cluster's scans: a hash id -> result and a sorted set of ids by finish time."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def save(self, result: ScanResult) -> None:
        """Keep `result` (again, under the same id, for a retried job) and drop scans past the limit."""
        order = keys.cis_scan_order(result.cluster)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(keys.cis_scans(result.cluster), result.id, result.model_dump_json(by_alias=True))
        pipe.zadd(order, {result.id: result.finished_at.timestamp()})
        pipe.execute()
        oldest: list[bytes] = self.redis.zrange(order, 0, -(defaults.CIS_SCAN_HISTORY_MAX + 1))  # type: ignore[assignment]
        expired = [item.decode() for item in oldest]
        if expired:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hdel(keys.cis_scans(result.cluster), *expired)
            pipe.zrem(order, *expired)
            pipe.execute()

    def get(self, *, cluster: str, scan_id: str) -> ScanResult | None:
        raw: bytes | None = self.redis.hget(keys.cis_scans(cluster), scan_id)  # type: ignore[assignment]
        return None if raw is None else ScanResult.model_validate_json(raw)

    def ids(self, cluster: str) -> list[str]:
        """Newest first."""
        raw: list[bytes] = self.redis.zrevrange(keys.cis_scan_order(cluster), 0, -1)  # type: ignore[assignment]
        return [item.decode() for item in raw]

    def latest(self, cluster: str, *, before: str | None = None) -> ScanResult | None:
        """The newest scan, or the newest one older than scan `before`."""
        ids = self.ids(cluster)
        if before is not None:
            ids = ids[ids.index(before) + 1 :] if before in ids else ids
        return self.get(cluster=cluster, scan_id=ids[0]) if ids else None
