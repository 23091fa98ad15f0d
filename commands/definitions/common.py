"""Argument types shared by several commands, with their grammar (names, positional shape) attached."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field

from commands.grammar import Arg
from kobot import validation
from kobot.deferred_models import DeferredModel

T = TypeVar("T")


def optional(check: Callable[[str], T]) -> Callable[[str | None], T | None]:
    """Run a value check only when the optional argument was given."""

    def run(value: str | None) -> T | None:
        return None if value is None else check(value)

    return run


class Args(DeferredModel):
    """Base of every command's arguments: frozen, and an unknown argument is an error, not ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


BreakGlass = Annotated[
    str | None,
    AfterValidator(optional(validation.break_glass)),
    Arg(names=("breakglass", "紧急原因", "紧急", "破窗"), kind="reason"),
    Field(description="why this must run now, skipping approval where policy allows; audited"),
]
"""Every command that can be risky accepts it: the dispatcher and policy decide what it unlocks."""

Version = Annotated[
    str,
    AfterValidator(validation.kubernetes_version),
    Arg(
        names=("ver", "kubernetes", "k8s", "版本"), positional=True, shape=r"v?\d+\.\d+(\.\d+)*", kind="1.N.P"
    ),
    Field(description=f"Kubernetes version, supported: {validation.supported_versions_text()}"),
]

GPU_WORKERS_ARG = Arg(names=("gpu", "gpus", "gpu-workers", "gpu节点", "显卡节点", "GPU节点"))
GPU_WORKERS_FIELD = Field(
    ge=0, le=validation.WORKERS_MAX, description="how many workers have an NVIDIA GPU (driver, runtime)"
)
GpuWorkers = Annotated[int, GPU_WORKERS_FIELD, GPU_WORKERS_ARG]
"""Create and scale take it: GPU workers get the NVIDIA driver, toolkit and containerd runtime."""

NodeName = Annotated[
    str,
    AfterValidator(validation.node_name),
    Arg(names=("name", "节点", "节点名"), positional=True, shape=r"[A-Za-z0-9][\w.-]*", kind="node name"),
    Field(description="the Kubernetes node name (DNS-1123 label, like worker-3)"),
]

JobNumber = Annotated[
    int,
    BeforeValidator(validation.job_id),
    Arg(
        names=("id", "任务", "任务号", "编号"), positional=True, shape=r"#?\d+", kind="job number, 42 or #42"
    ),
    Field(description="the job number kobot showed when it queued the job"),
]


# --- schedules (backups, health checks, CIS scans) ---------------------------------------------------------
DailyOrHourly = Annotated[
    Literal["day", "hour"],
    Arg(
        names=("period", "周期"),
        positional=True,
        synonyms={"daily": "day", "days": "day", "天": "day", "每天": "day", "hourly": "hour",
                  "hours": "hour", "小时": "hour", "每小时": "hour"},
    ),
    Field(description="day or hour"),
]  # fmt: skip
"""`every day` / `every hour` of a schedule."""

TimeOfDay = Annotated[
    time,
    Arg(names=("time", "时间"), positional=True, shape=r"[0-2]?[0-9]:[0-5][0-9]", kind="HH:MM"),
    Field(description="time of day (for hour: its minute), in the schedule's time zone"),
]
"""`at 02:00` of a schedule."""

ScheduleTimeZone = Annotated[
    str | None,
    AfterValidator(optional(validation.time_zone)),
    Arg(names=("tz", "zone", "时区"), kind="time zone, like Asia/Shanghai"),
    Field(description="the time zone of `at`; default the settings' schedule time zone (UTC)"),
]
"""`tz=Asia/Shanghai` of a schedule."""
