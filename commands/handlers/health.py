"""Handlers of the health check and its schedule. The check runs on a worker thread within
`HEALTH_CHECK_DEADLINE_SECONDS`, never on the chat loop; a schedule is data the scheduler loop reads."""

from __future__ import annotations

import asyncio
import threading

from commands.context import CommandContext, CommandResult, Reply, reply
from commands.definitions.health import (
    HealthCheckArgs,
    HealthScheduleArgs,
    HealthScheduleOffArgs,
    HealthScheduleShowArgs,
)
from commands.handlers.schedule_replies import ScheduleWords, show_schedules, stop_schedule
from commands.registry import handles
from kobot import defaults
from kobot.access import CLUSTER_READ_PERMISSION, EVERY_SCOPE, scoped_permission
from kobot.clock import utcnow
from kobot.errors import KobotError, NotFoundError, PermissionDeniedError
from kobot.messages import Tone
from kobot.risk import Risk
from kobot.store import secret_key
from workers import etcd
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets
from workers.health_cards import report_card
from workers.health_check import HealthReport, check_cluster
from workers.health_schedule import HealthCheckSchedule, HealthScheduleStore
from workers.schedule_slots import next_slot


@handles(HealthCheckArgs)
async def check_health(ctx: CommandContext, args: HealthCheckArgs) -> CommandResult:
    cluster = ctx.runtime.clusters.require(ctx.cluster()).name
    _may_read_everything(ctx, cluster)
    limit = defaults.HEALTH_CHECK_DEADLINE_SECONDS
    if not CHECKS_RUNNING.acquire(blocking=False):
        raise KobotError(
            f"kobot is busy with {defaults.HEALTH_CHECKS_CONCURRENT_MAX} health checks already; "
            f"try `check cluster {cluster}` again in a minute"
        )
    try:
        report = await asyncio.wait_for(
            asyncio.to_thread(_check_holding_slot, ctx, cluster),
            timeout=limit + defaults.HEALTH_CHECK_DEADLINE_MARGIN_SECONDS,
        )
    except TimeoutError:
        raise KobotError(
            f"the health check of {cluster} did not finish within {limit:.0f}s; "
            "its API server or etcd may be down or overloaded"
        ) from None
    return Reply(report_card(report))


CHECKS_RUNNING = threading.BoundedSemaphore(defaults.HEALTH_CHECKS_CONCURRENT_MAX)
"""Slots of the `check cluster` threads of this process; a thread frees its own when it ends (a check the
chat stopped waiting for still holds one), so the threads stay bounded. Threading's, not asyncio's: it is
freed on the worker thread and is not tied to one event loop."""


def _check_holding_slot(ctx: CommandContext, cluster: str) -> HealthReport:
    try:
        return _check_blocking(ctx, cluster)
    finally:
        CHECKS_RUNNING.release()


def _check_blocking(ctx: CommandContext, cluster: str) -> HealthReport:
    runtime = ctx.runtime
    secrets = ClusterSecrets(redis=runtime.redis, secret=secret_key(runtime.settings))
    kubeconfig = secrets.get(cluster=cluster, name=KUBECONFIG_SECRET)
    if kubeconfig is None:
        raise NotFoundError(
            f"kobot holds no admin kubeconfig for {cluster}: it is stored when its create job installs "
            "Kubernetes, so the health check works once the cluster is up"
        )
    access = etcd.load_access(redis=runtime.redis, cluster=cluster)
    return check_cluster(kubeconfig=kubeconfig, cluster=cluster, etcd_access=access, now=utcnow())


def _may_read_everything(ctx: CommandContext, cluster: str) -> None:
    """The check lists pods of every namespace: a `kubectl` grant for some namespaces is not enough."""
    require_every_namespace_read(
        ctx,
        cluster,
        why=f"the health check reads every namespace of {cluster}",
        instead=f"read the namespaces you may with `kubectl get pods -n NAMESPACE on {cluster}`",
    )


def require_every_namespace_read(ctx: CommandContext, cluster: str, *, why: str, instead: str) -> None:
    """Refuse unless the person may read every namespace of `cluster` (what a health check shows: pod
    and volume names of all of them); `why` and `instead` make the answer."""
    permission = scoped_permission(CLUSTER_READ_PERMISSION, EVERY_SCOPE)
    allowed = ctx.runtime.policy.can_run(
        identity=ctx.identity,
        conversation=ctx.conversation,
        command_id=permission,
        risk=Risk.READ,
        cluster=cluster,
    )
    if not allowed:
        raise PermissionDeniedError(f"{why} (permission {permission}); {instead}, or ask an admin")


@handles(HealthScheduleArgs)
async def schedule_checks(ctx: CommandContext, args: HealthScheduleArgs) -> CommandResult:
    cluster = ctx.runtime.clusters.require(ctx.cluster()).name
    zone = args.timezone or ctx.runtime.settings.health.schedule_timezone
    schedule = HealthCheckSchedule(
        cluster=cluster,
        every=args.every,
        at=args.at,
        timezone=zone,
        set_by=ctx.identity.label(),
        next_run_at=next_slot(every=args.every, at=args.at, timezone=zone, after=utcnow()),
    )
    store = HealthScheduleStore(ctx.runtime.redis)
    previous = store.get(cluster)
    store.save(schedule)
    replaced = f"\nIt replaces: {previous.describe()}" if previous is not None else ""
    return reply(
        f"Health checks of {cluster} scheduled",
        body=(
            f"{schedule.describe()}\nWhat gets worse is posted once to channels that asked for it: "
            f"`notify {cluster} health` (or node); certificate expiry: `notify {cluster} certificate`."
            f"{replaced}"
        ),
        tone=Tone.SUCCESS,
    )


HEALTH_SCHEDULE_WORDS = ScheduleWords(
    noun="health-check schedule",
    listed="Health-check schedules",
    list_command="check schedule",
    stopped=lambda cluster: f"Scheduled health checks of {cluster} stopped",
    after_stop=lambda cluster: (
        f"Certificate-expiry notices go on; check by hand with `check cluster {cluster}`."
    ),
    set_example=lambda cluster: (
        f"Set one: `check {cluster} every day at 08:00`, or check now: `check cluster {cluster}`."
    ),
)


@handles(HealthScheduleShowArgs)
async def show_check_schedules(ctx: CommandContext, args: HealthScheduleShowArgs) -> CommandResult:
    return show_schedules(ctx, HealthScheduleStore(ctx.runtime.redis), HEALTH_SCHEDULE_WORDS)


@handles(HealthScheduleOffArgs)
async def stop_check_schedule(ctx: CommandContext, args: HealthScheduleOffArgs) -> CommandResult:
    return stop_schedule(ctx, HealthScheduleStore(ctx.runtime.redis), HEALTH_SCHEDULE_WORDS)
