"""`autoheal <cluster> on|off`: the setting the node watcher acts on (`bot.autoheal`)."""

from __future__ import annotations

from commands.context import CommandContext, CommandResult, reply
from commands.definitions.autoheal import AutohealArgs
from commands.registry import handles
from kobot.autoheal import AutohealSetting, AutohealStore
from kobot.errors import KobotError
from kobot.messages import Tone

MANUAL_PROVIDERS = ("manual", "")
"""Providers whose machines kobot does not create: no spare machine to replace a node with."""


def _minutes(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


@handles(AutohealArgs)
async def set_autoheal(ctx: CommandContext, args: AutohealArgs) -> CommandResult:
    record = ctx.runtime.clusters.require(ctx.cluster())
    if args.state == "on" and record.provider in MANUAL_PROVIDERS:
        raise KobotError(
            f"{record.name} runs on your own machines (provider=manual): autoheal replaces a node with a "
            "new machine, which kobot creates only on vSphere or OpenStack. Replace a node yourself with "
            f"`replace node <node> on {record.name} host=<address>`."
        )
    setting = AutohealSetting(
        enabled=args.state == "on",
        after_seconds=args.after,
        max_unhealthy_percent=args.max_unhealthy,
        set_by=ctx.identity.key,
    )
    AutohealStore(ctx.runtime.redis).save_setting(record.name, setting)
    if not setting.enabled:
        return reply(f"autoheal is off on {record.name}: NotReady nodes are only announced", tone=Tone.INFO)
    return reply(
        f"autoheal is on for {record.name}: a worker NotReady for more than {_minutes(args.after)} is "
        f"cordoned, drained and replaced, one at a time, through the approval rules of `replace node`; "
        f"with more than {args.max_unhealthy}% of the nodes NotReady nothing is replaced and people are "
        "paged. Masters are never replaced automatically.",
        tone=Tone.SUCCESS,
    )
