"""Commands about kobot itself and its records: help, whoami, audit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from commands.definitions.common import Args, optional
from commands.grammar import Arg
from commands.help import resolve_topic
from commands.registry import command
from kobot import validation
from kobot.risk import Risk


@command(
    "help",
    aliases=(
        "help",
        "usage",
        "commands",
        "what can you do",
        "帮助",
        "命令",
        "命令列表",
        "怎么用",
        "使用说明",
    ),
    risk=Risk.READ,
    summary="List what you can do here, or explain one command.",
    examples=("help", "help create", "help scale", "帮助", "帮助 扩容"),
)
class HelpArgs(Args):
    """The topic is a command (`help create`, `帮助 创建集群`) or an area (`help nodes`)."""

    topic: Annotated[
        str | None,
        AfterValidator(optional(resolve_topic)),
        Arg(names=("主题", "command"), positional=True, greedy=True, kind="command or area"),
        Field(description="what to explain"),
    ] = None


@command(
    "whoami",
    aliases=("whoami", "who am i", "my roles", "my permissions", "我是谁", "我的权限", "我的角色"),
    risk=Risk.READ,
    summary="Show who kobot thinks you are, your roles and what you may do here.",
    examples=("whoami", "我是谁"),
)
class WhoamiArgs(Args):
    """No arguments."""


@command(
    "audit",
    aliases=("audit", "audit log", "history", "who did what", "审计", "审计日志", "操作记录", "操作历史"),
    risk=Risk.READ,
    summary="Who ran what, when, with what result; optionally for one cluster and a recent span.",
    examples=("audit", "audit prod since=1h", "audit 2d", "审计 prod 时间=2025-01-31"),
    cluster="optional",
)
class AuditArgs(Args):
    """Without a cluster, every cluster you may see. `since` is a span (30m, 1h, 2d, 1w) or a date."""

    since: Annotated[
        str | None,
        AfterValidator(optional(validation.since)),
        Arg(
            names=("时间", "自从", "最近", "last"),
            positional=True,
            shape=r"\d+\s*(m|min|h|d|w)|\d{4}-\d{2}-\d{2}\S*",
            kind="30m, 1h, 2d, 1w or a date",
        ),
        Field(description="only records newer than this"),
    ] = None

    def since_start(self, *, now: datetime) -> datetime | None:
        """The moment the query starts from, or None for everything kept."""
        return None if self.since is None else validation.since_start(self.since, now=now)


@command(
    "channel.bind",
    aliases=(
        "use",
        "bind this channel to",
        "bind channel to",
        "bind this chat to",
        "bind to",
        "bind",
        "本群使用",
        "绑定集群",
        "绑定",
        "使用集群",
    ),
    risk=Risk.CHANGE,
    summary="Bind this channel to a cluster, so commands here may leave its name out.",
    examples=("use prod here", "bind this channel to prod", "绑定 prod"),
    cluster="required",
)
class ChannelBindArgs(Args):
    """No arguments besides the cluster. Needs the right to change that cluster; grants nobody anything."""


@command(
    "channel.unbind",
    aliases=("unbind", "unbind this channel", "unbind channel", "解绑", "解除绑定", "取消绑定"),
    risk=Risk.CHANGE,
    summary="Remove the cluster binding made in chat; the policy file's binding, if any, applies again.",
    examples=("unbind", "解绑"),
)
class ChannelUnbindArgs(Args):
    """No arguments."""
