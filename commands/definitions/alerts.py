"""Where alerts and job notices go: subscribe this channel to a cluster's alerts, pick event kinds."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from commands.definitions.common import Args
from commands.grammar import Arg
from commands.registry import command
from kobot.risk import Risk

Severity = Literal["critical", "warning", "info"]

SEVERITY_ARG = Arg(
    names=("level", "min-severity", "级别", "等级", "严重性"),
    positional=True,
    synonyms={"严重": "critical", "紧急": "critical", "警告": "warning", "信息": "info", "提示": "info"},
)

NOTICE_EVENTS = ("job", "approval", "backup", "node", "certificate", "health")
"""Kinds of notices a channel can ask for besides alerts."""


@command(
    "alerts.subscribe",
    aliases=(
        "subscribe alerts",
        "subscribe to alerts",
        "subscribe",
        "alerts on",
        "watch alerts",
        "订阅告警",
        "订阅报警",
        "接收告警",
    ),
    risk=Risk.CHANGE,
    summary="Post this cluster's alerts here, from a severity up (critical > warning > info).",
    examples=("subscribe alerts prod", "subscribe alerts prod severity=critical", "订阅告警 prod 级别=严重"),
    cluster="required",
)
class AlertsSubscribeArgs(Args):
    """severity=warning (the default) posts warning and critical alerts."""

    severity: Annotated[Severity, SEVERITY_ARG, Field(description="lowest severity to post")] = "warning"


@command(
    "alerts.unsubscribe",
    aliases=(
        "unsubscribe alerts",
        "unsubscribe from alerts",
        "unsubscribe",
        "alerts off",
        "取消订阅告警",
        "退订告警",
        "取消告警订阅",
    ),
    risk=Risk.CHANGE,
    summary="Stop posting this cluster's alerts here (all of them, or one severity and below).",
    examples=("unsubscribe alerts prod", "退订告警 prod"),
    cluster="required",
)
class AlertsUnsubscribeArgs(Args):
    """Without severity, no alert of the cluster is posted here any more."""

    severity: Annotated[Severity | None, SEVERITY_ARG, Field(description="stop below this severity only")] = (
        None
    )


@command(
    "notify",
    aliases=("notify", "notifications", "notify me", "通知", "订阅通知", "通知设置"),
    risk=Risk.CHANGE,
    summary=(
        "Choose which notices about a cluster come here: job, approval, backup, node, certificate, health."
    ),
    examples=("notify prod events=job,backup", "notify prod all", "通知 prod 事件=任务,审批"),
    cluster="required",
)
class NotifyArgs(Args):
    """`all` picks every kind. The list replaces what the channel had."""

    events: Annotated[
        list[Literal["job", "approval", "backup", "node", "certificate", "health"]],
        Arg(
            names=("event", "kinds", "事件", "类型"),
            positional=True,
            synonyms={
                "all": ",".join(NOTICE_EVENTS),
                "全部": ",".join(NOTICE_EVENTS),
                "jobs": "job",
                "任务": "job",
                "审批": "approval",
                "approvals": "approval",
                "备份": "backup",
                "backups": "backup",
                "节点": "node",
                "nodes": "node",
                "证书": "certificate",
                "certificates": "certificate",
                "健康": "health",
                "巡检": "health",
            },
            kind="list, comma separated, or all",
        ),
        AfterValidator(lambda events: list(dict.fromkeys(events))),
        Field(min_length=1, description="which notices to post"),
    ]
