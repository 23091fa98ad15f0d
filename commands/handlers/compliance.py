"""CIS scans from chat: queue a scan, show or list the kept ones, and set, show or stop a schedule. A
schedule is data the scheduler loop reads; setting one queues nothing now."""

from __future__ import annotations

from commands.context import CommandContext, CommandResult, Reply, reply
from commands.definitions.compliance import (
    ScanArgs,
    ScanListArgs,
    ScanScheduleArgs,
    ScanScheduleOffArgs,
    ScanScheduleShowArgs,
    ScanShowArgs,
)
from commands.handlers.schedule_replies import ScheduleWords, show_schedules, stop_schedule
from commands.handlers.submit import day2_job
from commands.registry import handles
from kobot.clock import utcnow
from kobot.errors import NotFoundError
from kobot.job_records import JobKind
from kobot.messages import Tone
from workers.compliance.cards import scan_card
from workers.compliance.kube_bench import KUBE_BENCH_VERSION
from workers.compliance.results import ScanStore
from workers.compliance.schedule import ScanSchedule, ScanScheduleStore


@handles(ScanArgs)
async def scan_cluster(ctx: CommandContext, args: ScanArgs) -> CommandResult:
    record = ctx.runtime.clusters.require(ctx.cluster())
    lines = [
        f"kube-bench {KUBE_BENCH_VERSION} on {len(record.nodes)} node(s) of {record.name}: "
        "reads files and processes, changes nothing",
    ]
    return day2_job(ctx, args, kind=JobKind.CIS_SCAN, lines=lines)


@handles(ScanShowArgs)
async def show_scan(ctx: CommandContext, args: ScanShowArgs) -> CommandResult:
    cluster = ctx.runtime.clusters.require(ctx.cluster()).name
    store = ScanStore(ctx.runtime.redis)
    if args.scan is None:
        result = store.latest(cluster)
        if result is None:
            raise NotFoundError(f"{cluster} has no CIS scan yet; run one with `scan {cluster}`")
    else:
        result = store.get(cluster=cluster, scan_id=str(args.scan))
        if result is None:
            kept = ", ".join(store.ids(cluster)) or "none"
            raise NotFoundError(f"{cluster} has no scan {args.scan}; kept scans: {kept}")
    return Reply(scan_card(result))


@handles(ScanListArgs)
async def list_scans(ctx: CommandContext, args: ScanListArgs) -> CommandResult:
    cluster = ctx.runtime.clusters.require(ctx.cluster()).name
    store = ScanStore(ctx.runtime.redis)
    lines = []
    for scan_id in store.ids(cluster):
        result = store.get(cluster=cluster, scan_id=scan_id)
        if result is None:
            continue
        t = result.totals()
        change = (
            "first"
            if result.diff.previous_id is None
            else f"+{len(result.diff.newly_failing)} failing, {len(result.diff.fixed)} fixed"
        )
        how = " (scheduled)" if result.scheduled else ""
        lines.append(
            f"{result.id}  {result.finished_at:%Y-%m-%d %H:%M} UTC{how}  pass {t['pass']} · fail {t['fail']}"
            f" · warn {t['warn']} · info {t['info']}  ({change})"
        )
    if not lines:
        return reply(f"{cluster} has no CIS scans yet", body=f"Run one: `scan {cluster}`.")
    lines.append(f"Open one with `show scan {cluster} ID`.")
    return reply(f"CIS scans of {cluster}", body="\n".join(lines))


@handles(ScanScheduleArgs)
async def schedule_scans(ctx: CommandContext, args: ScanScheduleArgs) -> CommandResult:
    cluster = ctx.runtime.clusters.require(ctx.cluster()).name
    schedule = ScanSchedule(
        cluster=cluster,
        at=args.at,
        on=args.on if args.every == "week" else None,
        timezone=args.timezone or ctx.runtime.settings.backups.schedule_timezone,
        requested_by=ctx.identity,
        reply_to=ctx.conversation,
        next_run_at=utcnow(),
    )
    schedule.next_run_at = schedule.following(utcnow())
    previous = ScanScheduleStore(ctx.runtime.redis).put(schedule, keep=_keep_scan_in_flight)
    replaced = f"\nIt replaces: {previous.describe()}" if previous is not None else ""
    return reply(
        f"CIS scans of {cluster} scheduled",
        body=f"{schedule.describe()}\nOnly changes (newly failing or fixed checks) and failures are posted."
        f"{replaced}",
        tone=Tone.SUCCESS,
    )


def _keep_scan_in_flight(stored: ScanSchedule, replacement: ScanSchedule) -> None:
    """The scan still running (or not yet reported) stays known, so it is neither doubled nor lost; read
    in the write's transaction, as the scheduler loop of another process may be recording one just now."""
    replacement.last_job_id, replacement.reported_job_id = stored.last_job_id, stored.reported_job_id


SCAN_SCHEDULE_WORDS = ScheduleWords(
    noun="CIS scan schedule",
    listed="CIS scan schedules",
    list_command="scan schedule",
    stopped=lambda cluster: f"Scheduled CIS scans of {cluster} stopped",
    after_stop=lambda cluster: "Scans already taken stay.",
    set_example=lambda cluster: f"Set one: `scan {cluster} every week on monday at 03:00`.",
)


@handles(ScanScheduleShowArgs)
async def show_scan_schedules(ctx: CommandContext, args: ScanScheduleShowArgs) -> CommandResult:
    return show_schedules(ctx, ScanScheduleStore(ctx.runtime.redis), SCAN_SCHEDULE_WORDS)


@handles(ScanScheduleOffArgs)
async def stop_scan_schedule(ctx: CommandContext, args: ScanScheduleOffArgs) -> CommandResult:
    return stop_schedule(ctx, ScanScheduleStore(ctx.runtime.redis), SCAN_SCHEDULE_WORDS)
