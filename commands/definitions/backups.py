"""Backup schedules and the list of backups: `backup prod every day at 02:00 keep 14`, `backup schedule
prod`, `backup prod off`, `list backups prod` (and 中文). Ids start with `etcd.` so a policy granting
`etcd.*` covers them as it covers `backup` and `restore`."""

from __future__ import annotations

from datetime import time
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from commands.definitions.common import Args, DailyOrHourly, TimeOfDay
from commands.grammar import Arg
from commands.registry import command
from kobot import defaults
from kobot.errors import CommandError
from kobot.risk import Risk
from kobot.settings_backups import LOCAL_TARGET, TARGET_NAME
from kobot.validation import ArgValueError

TARGET_SHAPE = TARGET_NAME.pattern
"""A target name exactly as settings accept them."""


def target_name(value: str) -> str:
    """A target name as settings spell them (the whole word: pydantic's `pattern` would only search)."""
    if not TARGET_NAME.fullmatch(value):
        raise ArgValueError(
            f"target {value!r} is no target name: `local` or a configured one (a-z, 0-9 and -, "
            "starting with a letter; `backup schedule` lists them)"
        )
    return value


TargetName = Annotated[
    str,
    AfterValidator(target_name),
    Arg(names=("to-target", "目标"), shape=TARGET_SHAPE, kind="target name"),
    Field(description="where backups go: local or a configured target"),
]
"""`target=NAME` of the backup commands."""


HOURLY_ALIAS = "备份 {cluster} 每小时"
"""The 中文 phrase that says the period itself (`备份 prod 每小时 00:15`); `备份 prod 每天` is the default."""


def _period_from_alias(alias: str, raw: dict[str, Any]) -> dict[str, Any]:
    if alias == HOURLY_ALIAS:
        if raw.get("every", "hour") != "hour":
            raise CommandError(f"`备份 <cluster> 每小时` is hourly; `every {raw['every']}` contradicts it")
        raw["every"] = "hour"
    return raw


@command(
    "etcd.schedule",
    aliases=(
        "backup {cluster} every",
        "schedule backup",
        "schedule backups",
        "备份 {cluster} 每天",
        HOURLY_ALIAS,
        "定时备份",
        "备份计划设置",
    ),
    risk=Risk.CHANGE,
    summary="Back up a cluster on a schedule, to kobot's disk or an off-host target, keeping the newest N.",
    examples=(
        "backup prod every day at 02:00 keep 14",
        "backup prod every hour at 00:15 target=offsite keep 48",
        "备份 prod 每天 02:00 保留 14",
        "备份 prod 每小时 00:15 保留 48",
        "定时备份 prod 每天 02:00 目标=offsite",
    ),
    cluster="required",
    prepare=_period_from_alias,
)
class BackupScheduleArgs(Args):
    """A missed run (kobot was down) runs once when kobot is back. A run never overlaps the previous one.
    `keep` deletes only older scheduled backups of that target, never ones taken by hand."""

    every: DailyOrHourly = "day"
    at: TimeOfDay = time(2, 0)
    keep: Annotated[
        int | None,
        Arg(names=("retain", "保留")),
        Field(ge=1, le=defaults.BACKUP_KEEP_MAX, description="how many scheduled backups to keep"),
    ] = None
    target: TargetName = LOCAL_TARGET


@command(
    "etcd.schedule.show",
    aliases=("backup schedule", "backup schedules", "show backup schedule", "备份计划", "查看备份计划"),
    risk=Risk.READ,
    summary="Show the backup schedule of a cluster (or of every cluster) and the configured targets.",
    examples=("backup schedule prod", "备份计划 prod"),
    cluster="optional",
)
class BackupScheduleShowArgs(Args):
    """Without a cluster, every schedule you may see."""


@command(
    "etcd.schedule.off",
    aliases=("backup {cluster} off", "stop backup schedule", "取消定时备份", "备份 {cluster} 关闭"),
    risk=Risk.CHANGE,
    summary="Stop a cluster's scheduled backups; the backups taken stay.",
    examples=("backup prod off", "取消定时备份 prod"),
    cluster="required",
)
class BackupScheduleOffArgs(Args):
    """Backups already taken are kept."""


@command(
    "etcd.backups",
    aliases=("list backups", "backups", "show backups", "备份列表", "查看备份"),
    risk=Risk.READ,
    summary="List a cluster's backups, newest first, with where each lives and its sha256.",
    examples=("list backups prod", "备份列表 prod"),
    cluster="required",
)
class BackupListArgs(Args):
    """Restore one with `restore prod from ID`: it is fetched from its target and checked first."""
