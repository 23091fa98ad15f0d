"""`autoheal prod on|off [after=10m] [max-unhealthy=20%]` (中文 `自愈 prod 开`): whether kobot replaces a
cluster's NotReady workers by itself. Its own permission, `node.autoheal` (change risk, so the built-in
operator holds it and a policy can exclude it by name); each replacement it makes is a `replace node`
under the cluster's approval rules."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from commands.definitions.common import Args
from commands.grammar import Arg
from commands.registry import command
from kobot import defaults
from kobot.errors import CommandError
from kobot.risk import Risk
from kobot.validation import ArgValueError

DURATION = re.compile(r"(\d+)([smh]?)")
"""`after=` values: seconds, or a number with s, m or h (`10m`)."""
UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}


def duration_seconds(value: object) -> object:
    """`10m` → 600; a plain number is seconds. Anything else is answered with the forms it takes."""
    if isinstance(value, int):
        return value
    match = DURATION.fullmatch(str(value).strip().lower())
    if match is None:
        raise ArgValueError(
            f"after={value!r} is no duration: say seconds or minutes/hours, like 600, 10m or 1h"
        )
    return int(match.group(1)) * UNIT_SECONDS[match.group(2)]


def percent(value: object) -> object:
    """`20%` or `20` → 20."""
    if isinstance(value, int):
        return value
    text = str(value).strip().removesuffix("%")
    if not text.isdigit():
        raise ArgValueError(f"max-unhealthy={value!r} is no share: say a percentage from 0 to 100, like 20%")
    return int(text)


STATE_ALIASES = {
    "autoheal {cluster} on": "on",
    "autoheal {cluster} off": "off",
    "自愈 {cluster} 开": "on",
    "自愈 {cluster} 开启": "on",
    "自愈 {cluster} 关": "off",
    "自愈 {cluster} 关闭": "off",
}
"""Phrases that say on or off themselves: after `prod`, a bare `on` would read as `on <cluster>`."""


def _state_from_alias(alias: str, raw: dict[str, Any]) -> dict[str, Any]:
    said = STATE_ALIASES.get(alias)
    if said is not None:
        if raw.get("state", said) != said:
            raise CommandError(f"`{alias}` turns autoheal {said}; `{raw['state']}` contradicts it")
        raw["state"] = said
    return raw


@command(
    "node.autoheal",
    aliases=(
        *STATE_ALIASES,
        "autoheal {cluster}",
        "autoheal",
        "auto-heal",
        "self-heal",
        "自愈 {cluster}",
        "自愈",
        "自动修复",
        "节点自愈",
    ),
    prepare=_state_from_alias,
    risk=Risk.CHANGE,
    summary="Let kobot replace a cluster's NotReady workers itself (under the approval rules), or stop it.",
    examples=(
        "autoheal prod on",
        "autoheal prod on after=15m max-unhealthy=30%",
        "autoheal prod off",
        "自愈 prod 开",
        "自愈 prod 关",
    ),
    cluster="required",
)
class AutohealArgs(Args):
    """A worker NotReady for longer than `after` is cordoned, drained and replaced (`replace node`), one
    node at a time per cluster. Each replacement asks for approval as `replace node` would, unless an
    approval rule for `node.autoheal` on the cluster needs none. When more than `max-unhealthy` of the
    nodes are NotReady that is an outage, not a node failure: kobot says so once and replaces nothing.
    Masters are never replaced automatically (etcd membership is a person's decision)."""

    state: Annotated[
        Literal["on", "off"],
        Arg(
            names=("状态",),
            positional=True,
            synonyms={
                "enable": "on",
                "enabled": "on",
                "disable": "off",
                "disabled": "off",
                "开": "on",
                "开启": "on",
                "打开": "on",
                "关": "off",
                "关闭": "off",
            },
        ),
        Field(description="on or off"),
    ]
    after: Annotated[
        int,
        BeforeValidator(duration_seconds),
        Arg(names=("threshold", "等待", "超过"), shape=r"\d+[smhSMH]?", kind="duration like 10m"),
        Field(
            ge=defaults.AUTOHEAL_AFTER_SECONDS_MIN,
            le=defaults.AUTOHEAL_AFTER_SECONDS_MAX,
            description="how long a worker is NotReady before it is replaced (seconds, or 10m, 1h)",
        ),
    ] = defaults.AUTOHEAL_AFTER_SECONDS_DEFAULT
    max_unhealthy: Annotated[
        int,
        BeforeValidator(percent),
        Arg(names=("max-unhealthy", "最多异常"), shape=r"\d+%?", kind="percentage like 20%"),
        Field(
            ge=0, le=100, description="above this share of NotReady nodes, replace nothing and page people"
        ),
    ] = defaults.AUTOHEAL_MAX_UNHEALTHY_PERCENT_DEFAULT
