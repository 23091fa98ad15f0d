"""CIS scans: `scan prod` (kube-bench on every node, as a job), `show scan prod [id]`, `list scans prod`
and their schedule: `scan prod every week on monday at 03:00`, `scan schedule prod`, `scan prod off`
(and 中文). Ids start with `cis.` so a policy granting `cis.*` covers them all."""

from __future__ import annotations

from datetime import time
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from commands.definitions.common import Args, ScheduleTimeZone, TimeOfDay
from commands.grammar import Arg
from commands.registry import command
from kobot import validation
from kobot.errors import CommandError
from kobot.job_records import JobKind
from kobot.risk import Risk

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

WEEKDAY_SYNONYMS = {
    **{day[:3]: day for day in _DAYS},
    "tues": "tuesday",
    "thur": "thursday",
    "thurs": "thursday",
    **{f"{prefix}{n}": day for prefix in ("周", "星期", "礼拜", "每周")
       for n, day in zip("一二三四五六日", _DAYS, strict=True)},
    "周天": "sunday",
    "星期天": "sunday",
}  # fmt: skip
"""Other words for the weekdays: three-letter English ones and 中文 (周一, 星期一, 每周一 …)."""

WEEKLY_ALIAS = "安全扫描 {cluster} 每周"
"""The 中文 phrase that says the period itself (`安全扫描 prod 每周 周一 03:00`)."""


def _period_from_alias(alias: str, raw: dict[str, Any]) -> dict[str, Any]:
    if alias == WEEKLY_ALIAS:
        if raw.get("every", "week") != "week":
            raise CommandError(f"`安全扫描 <cluster> 每周` is weekly; `every {raw['every']}` contradicts it")
        raw["every"] = "week"
    if raw.get("every") == "week" and raw.get("on") is None:
        raise CommandError("a weekly scan needs its day: `on monday` (monday … sunday, or 周一 … 周日)")
    if raw.get("every", "day") == "day" and raw.get("on") is not None:
        raw["every"] = "week"  # `scan prod every monday at 03:00` reads as weekly
    return raw


@command(
    "cis.scan",
    aliases=(
        "scan",
        "cis scan",
        "security scan",
        "compliance scan",
        "scan cluster",
        "安全扫描",
        "合规扫描",
        "基线扫描",
    ),
    risk=Risk.CHANGE,
    summary="Run the CIS benchmark (kube-bench) on every node; the result names what changed since the last.",
    examples=("scan prod", "安全扫描 prod"),
    cluster="required",
    job_kind=JobKind.CIS_SCAN.value,
)
class ScanArgs(Args):
    """kube-bench only reads the nodes; it comes from the cluster's offline files server. `show scan`
    lists the failed checks and how to fix them."""


ScanId = Annotated[
    int | None,
    BeforeValidator(lambda value: None if value is None else validation.job_id(value)),
    Arg(names=("id", "scan-id", "编号"), positional=True, shape=r"#?\d+", kind="scan number, 42 or #42"),
    Field(description="the scan's number (its job's); the newest scan when left out"),
]


@command(
    "cis.show",
    aliases=("show scan", "scan result", "scan results", "scan report", "查看扫描", "扫描结果"),
    risk=Risk.READ,
    summary="Show a CIS scan: counts per section, failed checks with their fix, the change since the last.",
    examples=("show scan prod", "show scan prod 42", "扫描结果 prod"),
    cluster="required",
)
class ScanShowArgs(Args):
    """Without a number, the newest scan of the cluster."""

    scan: ScanId = None


@command(
    "cis.list",
    aliases=("list scans", "scans", "show scans", "scan history", "扫描列表", "扫描记录"),
    risk=Risk.READ,
    summary="List a cluster's CIS scans, newest first, with their pass/fail/warn counts.",
    examples=("list scans prod", "扫描列表 prod"),
    cluster="required",
)
class ScanListArgs(Args):
    """kobot keeps the newest scans of each cluster (`show scan prod ID` opens one)."""


@command(
    "cis.schedule",
    aliases=(
        "scan {cluster} every",
        "schedule scan",
        "schedule scans",
        WEEKLY_ALIAS,
        "安全扫描 {cluster} 每天",
        "定时扫描",
        "定时安全扫描",
    ),
    risk=Risk.CHANGE,
    summary="Scan a cluster on a schedule (every day or every week on a weekday); only changes are posted.",
    examples=(
        "scan prod every week on monday at 03:00",
        "scan prod every day at 04:30",
        "安全扫描 prod 每周 周一 03:00",
        "定时扫描 prod 每天 04:30",
    ),
    cluster="required",
    prepare=_period_from_alias,
)
class ScanScheduleArgs(Args):
    """A run missed while kobot was down runs once when it is back; a run never overlaps the last one.
    A scheduled scan posts here only when checks newly fail or are fixed, or when it fails."""

    every: Annotated[
        Literal["day", "week"],
        Arg(
            names=("period", "周期"),
            positional=True,
            synonyms={"daily": "day", "days": "day", "天": "day", "每天": "day", "weekly": "week",
                      "weeks": "week", "周": "week", "每周": "week"},
        ),
        Field(description="day or week"),
    ] = "day"  # fmt: skip
    on: Annotated[
        Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] | None,
        Arg(names=("weekday", "星期"), positional=True, synonyms=WEEKDAY_SYNONYMS, kind="monday … sunday"),
        Field(description="the weekday of a weekly scan"),
    ] = None
    at: TimeOfDay = time(3, 0)
    timezone: ScheduleTimeZone = None


@command(
    "cis.schedule.show",
    aliases=("scan schedule", "scan schedules", "show scan schedule", "扫描计划", "查看扫描计划"),
    risk=Risk.READ,
    summary="Show the CIS scan schedule of a cluster (or of every cluster).",
    examples=("scan schedule prod", "扫描计划 prod"),
    cluster="optional",
)
class ScanScheduleShowArgs(Args):
    """Without a cluster, every scan schedule."""


@command(
    "cis.schedule.off",
    aliases=("scan {cluster} off", "stop scan schedule", "取消定时扫描", "安全扫描 {cluster} 关闭"),
    risk=Risk.CHANGE,
    summary="Stop a cluster's scheduled CIS scans; the scans taken stay.",
    examples=("scan prod off", "取消定时扫描 prod"),
    cluster="required",
)
class ScanScheduleOffArgs(Args):
    """Scans already taken are kept."""
