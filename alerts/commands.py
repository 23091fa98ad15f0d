"""Chat commands of the alerts package: `subscribe alerts`, `unsubscribe alerts` and `notify`.

The commands are defined in `commands.definitions.alerts`; importing this module attaches the
handlers. Subscriptions belong to the conversation the command was typed in and live in Redis, so
they survive restarts.
"""

from __future__ import annotations

from alerts.routing import Subscription
from alerts.subscriptions import (
    EVENT_GROUPS,
    ClusterEvent,
    NotifySubscription,
    alert_subscriptions_of,
    notify_subscriptions_of,
    parse_events,
    remove_alert_subscription,
    remove_notify_subscription,
    save_alert_subscription,
    save_notify_subscription,
)
from commands.context import CommandContext, CommandResult, Reply
from commands.definitions.alerts import NOTICE_EVENTS, AlertsSubscribeArgs, AlertsUnsubscribeArgs, NotifyArgs
from commands.handlers.health import require_every_namespace_read
from commands.registry import handles
from kobot.messages import Field, OutgoingMessage, Tone
from kobot.settings_alerts import AlertsSettings, RouteTarget


def _target(ctx: CommandContext) -> RouteTarget:
    """Subscriptions post to the conversation itself, not to the thread the command came from."""
    return RouteTarget(platform=ctx.conversation.platform, conversation_id=ctx.conversation.conversation_id)


def _cluster(ctx: CommandContext) -> str:
    cluster = ctx.parsed.cluster
    if not cluster:
        raise ValueError("the command names no cluster")
    return cluster


def _order(ctx: CommandContext) -> tuple[str, ...]:
    settings: AlertsSettings = getattr(ctx.runtime.settings, "alerts", None) or AlertsSettings()
    return tuple(name.lower() for name in settings.severity_order)


def _reply(title: str, *, status: str, tone: Tone = Tone.SUCCESS, fields: tuple[Field, ...] = ()) -> Reply:
    return Reply(message=OutgoingMessage(title=title, tone=tone, status=status, fields=fields))


@handles(AlertsSubscribeArgs)
async def subscribe_alerts(ctx: CommandContext, args: AlertsSubscribeArgs) -> CommandResult:
    cluster = _cluster(ctx)
    severity = args.severity.lower()
    if severity not in _order(ctx):
        return _reply("Not subscribed", status=f"unknown severity {severity!r}", tone=Tone.WARNING)
    subscription = Subscription(
        target=_target(ctx), cluster=cluster, min_severity=severity, created_by=ctx.identity.label()
    )
    save_alert_subscription(ctx.runtime.redis, subscription)
    return _reply(
        f"Alerts of {cluster} will be posted here",
        status=f"severity {severity} and above",
        fields=(Field(label="Stop with", value=f"unsubscribe alerts {cluster}"),),
    )


@handles(AlertsUnsubscribeArgs)
async def unsubscribe_alerts(ctx: CommandContext, args: AlertsUnsubscribeArgs) -> CommandResult:
    """Without a severity the subscription goes; with one, only that severity and those below it stop."""
    cluster = _cluster(ctx)
    target = _target(ctx)
    current = next(
        (s for s in alert_subscriptions_of(ctx.runtime.redis, target=target) if s.cluster == cluster), None
    )
    if current is None:
        return _reply(f"No alerts of {cluster} are posted here", status="nothing to stop", tone=Tone.INFO)
    severity = args.severity
    order = _order(ctx)
    if severity is not None and severity.lower() in order:
        above = order.index(severity.lower()) + 1
        current_rank = order.index(current.min_severity) if current.min_severity in order else 0
        if above < len(order):
            if current_rank < above:
                save_alert_subscription(
                    ctx.runtime.redis, current.model_copy(update={"min_severity": order[above]})
                )
            return _reply(
                f"Alerts of {cluster} below {order[above]} stop here",
                status=f"{order[max(above, current_rank)]} and above are still posted",
            )
    remove_alert_subscription(ctx.runtime.redis, target=target, cluster=cluster)
    return _reply(f"Alerts of {cluster} are no longer posted here", status="unsubscribed")


@handles(NotifyArgs)
async def notify(ctx: CommandContext, args: NotifyArgs) -> CommandResult:
    """The event list replaces what the conversation had for this cluster; the answer names what
    stops being posted and the command that keeps it too."""
    cluster = _cluster(ctx)
    words = list(args.events)
    try:
        events = parse_events(words)
    except ValueError as exc:
        return _reply("Notifications unchanged", status=str(exc), tone=Tone.WARNING)
    if ClusterEvent.HEALTH_WORSENED in events:
        # a health notice names pods and volumes of every namespace: what `check cluster` needs
        others = ",".join(dict.fromkeys(w for w in words if w != "health")) or "node"
        require_every_namespace_read(
            ctx,
            cluster,
            why=f"health notices name pods and volumes of every namespace of {cluster}",
            instead=f"`notify {cluster} {others}` posts the other notices (node findings with node)",
        )
    target = _target(ctx)
    before = [s for s in notify_subscriptions_of(ctx.runtime.redis, target=target) if s.cluster == cluster]
    remove_notify_subscription(ctx.runtime.redis, target=target, cluster=cluster)
    save_notify_subscription(
        ctx.runtime.redis,
        NotifySubscription(
            target=target,
            cluster=cluster,
            events=events,
            created_by=ctx.identity.label(),
            every_namespace=ClusterEvent.HEALTH_WORSENED in events,
        ),
    )
    names = ", ".join(event.value for event in events)
    dropped = [e for s in before for e in s.events if e not in events]
    if not dropped:
        return _reply(f"Notices about {cluster} will be posted here", status=names)
    # the list replaces the old one (that is how a channel narrows it), so say what stops and how to
    # keep everything: a channel wanting both node and approval notices is common
    kept = {*events, *dropped}
    both = ",".join(kind for kind in NOTICE_EVENTS if any(e in kept for e in EVENT_GROUPS[kind]))
    return _reply(
        f"Notices about {cluster} will be posted here",
        status=names,
        tone=Tone.WARNING,
        fields=(
            Field(label="No longer posted here", value=", ".join(e.value for e in dropped)),
            Field(label="To keep them too", value=f"notify {cluster} {both} here"),
        ),
    )
