"""Backup schedules and the list of backups. A schedule is data the scheduler loop reads; setting one
queues nothing now. Target names are checked against settings here, so a typo is answered at once."""

from __future__ import annotations

from commands.context import CommandContext, CommandResult, reply
from commands.definitions.backups import (
    BackupListArgs,
    BackupScheduleArgs,
    BackupScheduleOffArgs,
    BackupScheduleShowArgs,
)
from commands.handlers.submit import require_own_hosts
from commands.registry import handles
from kobot import defaults
from kobot.clock import utcnow
from kobot.errors import KobotError
from kobot.job_records import JobKind
from kobot.messages import Tone
from workers import etcd
from workers.backup_schedule import BackupSchedule, ScheduleStore, next_slot
from workers.backup_targets import target_named, targets_from_settings


@handles(BackupScheduleArgs)
async def schedule_backups(ctx: CommandContext, args: BackupScheduleArgs) -> CommandResult:
    record = ctx.runtime.clusters.require(ctx.cluster())
    require_own_hosts(record, kind=JobKind.ETCD_BACKUP.value)  # each scheduled backup would be refused
    cluster = record.name
    settings = ctx.runtime.settings
    target = target_named(settings, args.target)
    zone = settings.backups.schedule_timezone
    schedule = BackupSchedule(
        cluster=cluster,
        every=args.every,
        at=args.at,
        timezone=zone,
        keep=args.keep,
        target=args.target,
        requested_by=ctx.identity,
        reply_to=ctx.conversation,
        next_run_at=next_slot(every=args.every, at=args.at, timezone=zone, after=utcnow()),
    )
    store = ScheduleStore(ctx.runtime.redis)
    previous = store.get(cluster)
    if previous is not None:
        schedule.last_job_id = previous.last_job_id
    store.save(schedule)
    replaced = f"\nIt replaces: {previous.describe()}" if previous is not None else ""
    return reply(
        f"Backups of {cluster} scheduled",
        body=f"{schedule.describe()}\nTarget: {target.describe()}. Each run posts its job here.{replaced}",
        tone=Tone.SUCCESS,
    )


@handles(BackupScheduleShowArgs)
async def show_schedules(ctx: CommandContext, args: BackupScheduleShowArgs) -> CommandResult:
    store = ScheduleStore(ctx.runtime.redis)
    cluster = ctx.parsed.cluster
    schedules = [s for s in [store.get(cluster)] if s] if cluster else store.all()
    targets = ", ".join(t.describe() for t in targets_from_settings(ctx.runtime.settings).values())
    if not schedules:
        what = cluster or "any cluster"
        return reply(
            f"No backup schedule for {what}",
            body=f"Set one: `backup {cluster or 'prod'} every day at 02:00 keep 14`.\nTargets: {targets}",
        )
    return reply(
        "Backup schedules", body="\n".join(s.describe() for s in schedules) + f"\nTargets: {targets}"
    )


@handles(BackupScheduleOffArgs)
async def stop_schedule(ctx: CommandContext, args: BackupScheduleOffArgs) -> CommandResult:
    cluster = ctx.cluster()
    if not ScheduleStore(ctx.runtime.redis).delete(cluster):
        raise KobotError(f"{cluster} has no backup schedule (`backup schedule` lists them)")
    return reply(
        f"Scheduled backups of {cluster} stopped", body="Backups already taken stay.", tone=Tone.SUCCESS
    )


@handles(BackupListArgs)
async def list_backups(ctx: CommandContext, args: BackupListArgs) -> CommandResult:
    cluster = ctx.runtime.clusters.require(ctx.cluster()).name
    backups = etcd.list_backups(redis=ctx.runtime.redis, cluster=cluster)
    if not backups:
        return reply(f"{cluster} has no backups yet", body=f"Take one: `backup {cluster}`.")
    shown = backups[: defaults.BACKUPS_LISTED_MAX]
    lines = [
        f"{b.id}  {b.created_at:%Y-%m-%d %H:%M} UTC  {b.size} bytes  at {b.target}"
        f"{' (scheduled)' if b.scheduled else ''}  sha256 {b.sha256[:16]}"
        for b in shown
    ]
    more = len(backups) - len(shown)
    if more:
        lines.append(f"… and {more} older")
    lines.append(
        f"Restore one with `restore {cluster} from ID`: it is fetched and checked before anything stops."
    )
    return reply(f"Backups of {cluster}", body="\n".join(lines))
