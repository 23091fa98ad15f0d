"""Jobs: status, cancel, retry. A job number is what kobot showed when it queued the job."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from commands.definitions.common import Args, JobNumber
from commands.grammar import Arg
from commands.registry import command
from kobot.risk import Risk


@command(
    "job.status",
    aliases=(
        "job status",
        "job",
        "show job",
        "status of job",
        "job info",
        "任务状态",
        "任务",
        "查看任务",
        "任务详情",
    ),
    risk=Risk.READ,
    summary="Show a job's steps, the running task and the time so far.",
    examples=("job status 42", "job #42 --verbose", "任务状态 42"),
)
class JobStatusArgs(Args):
    """`--verbose` lists every step, not only the current one."""

    job: JobNumber
    verbose: Annotated[
        bool, Arg(names=("详细", "all")), Field(description="list every step and its tasks")
    ] = False


@command(
    "job.cancel",
    aliases=("cancel job", "cancel", "stop job", "abort job", "取消任务", "取消", "停止任务", "中止任务"),
    risk=Risk.CHANGE,
    summary="Stop a queued or running job; the running step stops cleanly and is marked cancelled.",
    examples=("cancel job 42", "取消任务 42"),
)
class JobCancelArgs(Args):
    """A cancelled job can be retried later; it resumes at the step that did not finish."""

    job: JobNumber


@command(
    "job.retry",
    aliases=("retry job", "retry", "rerun job", "resume job", "重试任务", "重试", "重新执行"),
    risk=Risk.CHANGE,
    summary="Run a failed or cancelled job again, from the step that did not finish.",
    examples=("retry job 42", "重试任务 #42"),
)
class JobRetryArgs(Args):
    """Steps that succeeded are not run again."""

    job: JobNumber
