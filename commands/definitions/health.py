"""Health checks (巡检): `check cluster prod` now, `check prod every day at 08:00` on a schedule,
`check schedule prod`, `check prod off` (and 中文). The check reads inside the cluster across every
namespace, so it needs the `kubectl` permission for all of them, as `kubectl get pods -A` does."""

from __future__ import annotations

from datetime import time

from commands.definitions.common import Args, DailyOrHourly, ScheduleTimeZone, TimeOfDay
from commands.registry import command
from kobot.access import CLUSTER_READ_PERMISSION
from kobot.risk import Risk


@command(
    "health.check",
    aliases=("check cluster", "health check", "check health", "巡检", "集群巡检", "健康检查"),
    permission=CLUSTER_READ_PERMISSION,
    risk=Risk.READ,
    summary="Check a cluster's health now: nodes, pods, control plane, etcd, PVCs, certificates, versions.",
    examples=("check cluster prod", "health check prod", "巡检 prod", "集群巡检 prod"),
    cluster="required",
)
class HealthCheckArgs(Args):
    """A summary card (ok / warning / critical counts) with each finding under it, worst first."""


@command(
    "health.schedule",
    aliases=(
        "check {cluster} every",
        "schedule check",
        "schedule health check",
        "巡检 {cluster} 每天",
        "定时巡检",
    ),
    risk=Risk.CHANGE,
    summary="Check a cluster's health on a schedule; what got worse is posted to `health` notice channels.",
    examples=(
        "check prod every day at 08:00",
        "check prod every hour at 00:30",
        "check prod every day at 08:00 tz=Asia/Shanghai",
        "巡检 prod 每天 08:00",
        "定时巡检 prod 每小时 00:30",
    ),
    cluster="required",
)
class HealthScheduleArgs(Args):
    """A missed run (kobot was down) runs once when kobot is back. Channels that said
    `notify prod health` (or `node`) hear what got worse, once; `certificate` ones hear of expiry."""

    every: DailyOrHourly = "day"
    at: TimeOfDay = time(8, 0)
    timezone: ScheduleTimeZone = None


@command(
    "health.schedule.show",
    aliases=("check schedule", "check schedules", "health check schedule", "巡检计划", "查看巡检计划"),
    risk=Risk.READ,
    summary="Show the health-check schedule of a cluster (or of every cluster).",
    examples=("check schedule prod", "check schedules", "巡检计划 prod"),
    cluster="optional",
)
class HealthScheduleShowArgs(Args):
    """Without a cluster, every schedule."""


@command(
    "health.schedule.off",
    aliases=("check {cluster} off", "stop check schedule", "巡检 {cluster} 关闭", "取消定时巡检"),
    risk=Risk.CHANGE,
    summary="Stop a cluster's scheduled health checks.",
    examples=("check prod off", "取消定时巡检 prod", "巡检 prod 关闭"),
    cluster="required",
)
class HealthScheduleOffArgs(Args):
    """Certificate-expiry notices go on (they look at certificates on their own every few hours)."""
