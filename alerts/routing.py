"""Which conversations a group goes to: settings routes, chat subscriptions, then the default route.

A route matches a group when at least one of its alerts satisfies every condition of the route, so a
group mixing warning and critical alerts reaches both a `severity>=warning` and a
`severity>=critical` channel.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from pydantic import ConfigDict

from kobot.deferred_models import DeferredModel
from kobot.patterns import cached_pattern
from kobot.settings_alerts import AlertRoute, AlertsSettings, RouteTarget, TimeWindow


class Subscription(DeferredModel):
    """`subscribe alerts <cluster> [severity>=X]` typed in a conversation: a route owned by the chat."""

    model_config = ConfigDict(frozen=True)

    target: RouteTarget
    cluster: str
    min_severity: str | None = None
    created_by: str = ""

    @property
    def key(self) -> str:
        return f"{self.target.key}|{self.cluster}"

    def as_route(self) -> AlertRoute:
        match = {} if self.cluster == "*" else {"cluster": self.cluster}
        return AlertRoute(
            name=f"subscription {self.key}",
            match=match,
            min_severity=self.min_severity,
            targets=[self.target],
        )


def severity_rank(severity: str | None, order: Sequence[str]) -> int:
    """Position of a severity in `order`; unknown or missing ranks lowest."""
    if severity is None:
        return 0
    try:
        return order.index(severity.lower())
    except ValueError:
        return 0


def in_window(window: TimeWindow, now: datetime) -> bool:
    local = now.astimezone(ZoneInfo(window.timezone))
    moment = local.time().replace(tzinfo=None)
    if window.start <= window.end:
        return local.weekday() in window.weekdays and window.start <= moment < window.end
    # Past midnight: the evening part belongs to the day it started, the morning part to the day before.
    if moment >= window.start:
        return local.weekday() in window.weekdays
    if moment < window.end:
        return (local.weekday() - 1) % 7 in window.weekdays
    return False


def labels_match(route: AlertRoute, labels: dict[str, str], *, order: Sequence[str]) -> bool:
    for name, value in route.match.items():
        if labels.get(name, "") != value:
            return False
    for name, pattern in route.match_re.items():
        if cached_pattern(pattern).fullmatch(labels.get(name, "")) is None:
            return False
    if route.min_severity is not None:
        return severity_rank(labels.get("severity"), order) >= severity_rank(route.min_severity, order)
    return True


def route_matches(
    route: AlertRoute, alert_labels: Iterable[dict[str, str]], *, order: Sequence[str], now: datetime
) -> bool:
    if route.active and not any(in_window(window, now) for window in route.active):
        return False
    return any(labels_match(route, labels, order=order) for labels in alert_labels)


def route_group(
    *,
    settings: AlertsSettings,
    subscriptions: Sequence[Subscription],
    alert_labels: Sequence[dict[str, str]],
    now: datetime | None = None,
) -> list[RouteTarget]:
    """Targets for a group whose alerts carry `alert_labels`, without duplicates, in route order."""
    moment = now or datetime.now(UTC)
    order = [name.lower() for name in settings.severity_order]
    targets: dict[str, RouteTarget] = {}
    for route in settings.routes:
        if route_matches(route, alert_labels, order=order, now=moment):
            for target in route.targets:
                targets.setdefault(target.key, target)
            if route.stop:
                break
    for subscription in subscriptions:
        if route_matches(subscription.as_route(), alert_labels, order=order, now=moment):
            targets.setdefault(subscription.target.key, subscription.target)
    if not targets:
        for target in settings.default_targets:
            targets.setdefault(target.key, target)
    return list(targets.values())
