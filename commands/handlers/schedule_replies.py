"""The show and stop answers every per-cluster schedule gives alike (health checks, CIS scans): what
differs is only how the schedule is named and what to type next."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from commands.context import CommandContext, CommandResult, reply
from kobot.errors import KobotError
from kobot.messages import Tone
from workers.schedule_slots import SlotStore


@dataclass(frozen=True)
class ScheduleWords:
    """How one kind of schedule is spoken of in its answers."""

    noun: str
    """`health-check schedule`"""
    listed: str
    """The title of the list: `Health-check schedules`."""
    list_command: str
    """What lists them: `check schedule`."""
    stopped: Callable[[str], str]
    """The title when a cluster's schedule is stopped."""
    after_stop: Callable[[str], str]
    """What still happens, or what to do, once stopped."""
    set_example: Callable[[str], str]
    """How to set one, for the cluster asked about (or `prod`)."""


def show_schedules(ctx: CommandContext, store: SlotStore[Any], words: ScheduleWords) -> CommandResult:
    """The cluster's schedule, or every cluster's when none is named."""
    cluster = ctx.parsed.cluster
    schedules = [s for s in [store.get(cluster)] if s] if cluster else store.all()
    if not schedules:
        return reply(
            f"No {words.noun} for {cluster or 'any cluster'}", body=words.set_example(cluster or "prod")
        )
    return reply(words.listed, body="\n".join(s.describe() for s in schedules))


def stop_schedule(ctx: CommandContext, store: SlotStore[Any], words: ScheduleWords) -> CommandResult:
    """Delete the cluster's schedule; a clear answer when it has none."""
    cluster = ctx.cluster()
    if not store.delete(cluster):
        raise KobotError(f"{cluster} has no {words.noun} (`{words.list_command}` lists them)")
    return reply(words.stopped(cluster), body=words.after_stop(cluster), tone=Tone.SUCCESS)
