"""Explicit registry of commands: canonical id, aliases (English and 中文), typed args, permission, risk.

Definitions register with `@command(...)` on their pydantic args model; handlers attach with
`@handles(command_id)`. `help` is generated from this registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from commands.context import CommandContext, CommandResult
from commands.parsed import ParsedCommand
from kobot.automation_values import ALLOW_LOCAL_HOSTS
from kobot.risk import Risk

Handler = Callable[[CommandContext, Any], Awaitable[CommandResult]]


@dataclass
class CommandSpec:
    """Everything kobot knows about one command."""

    id: str
    aliases: tuple[str, ...]
    """Phrases that name the command, English and Chinese: "create cluster", "创建集群"."""
    args_model: type[BaseModel]
    permission: str
    risk: Risk
    summary: str
    examples: tuple[str, ...]
    cluster: str = "none"
    """"required", "optional" or "none": whether the command acts on a cluster."""
    job_kind: str | None = None
    """The job kind a mutating command queues; None for commands answered at once."""
    handler: Handler | None = field(default=None, repr=False)
    risk_rule: Callable[[Any], Risk] | None = field(default=None, repr=False)
    """Risk for given args when it depends on them; `risk` is then the highest it can return."""
    prepare: Callable[[str, dict[str, Any]], dict[str, Any]] | None = field(default=None, repr=False)
    """Adjusts raw argument words for the alias used (`缩容 prod 2` means remove two) before validation."""

    def risk_for(self, args: BaseModel) -> Risk:
        """The one place a command's risk is decided."""
        return self.risk_rule(args) if self.risk_rule is not None else self.risk


COMMANDS: dict[str, CommandSpec] = {}


def command(
    id: str,
    *,
    aliases: tuple[str, ...],
    permission: str | None = None,
    risk: Risk,
    summary: str,
    examples: tuple[str, ...],
    cluster: str = "none",
    job_kind: str | None = None,
    risk_rule: Callable[[Any], Risk] | None = None,
    prepare: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
) -> Callable[[type[BaseModel]], type[BaseModel]]:
    """Register a command whose arguments are the decorated pydantic model."""

    def decorate(model: type[BaseModel]) -> type[BaseModel]:
        if id in COMMANDS:
            raise ValueError(f"command {id} registered twice")
        COMMANDS[id] = CommandSpec(
            id=id,
            aliases=aliases,
            args_model=model,
            permission=permission or id,
            risk=risk,
            summary=summary,
            examples=examples,
            cluster=cluster,
            job_kind=job_kind,
            risk_rule=risk_rule,
            prepare=prepare,
        )
        return model

    return decorate


def handles(command_id: str) -> Callable[[Handler], Handler]:
    """Attach the handler that runs a parsed command."""

    def decorate(handler: Handler) -> Handler:
        COMMANDS[command_id].handler = handler
        return handler

    return decorate


def spec_of(parsed: ParsedCommand) -> CommandSpec:
    """The registered command a parse result names."""
    return COMMANDS[parsed.command]


def typed_args(parsed: ParsedCommand, *, allow_local_hosts: bool = False) -> BaseModel:
    """The arguments as the command's model; `allow_local_hosts` as in `commands.parser.parse`."""
    return COMMANDS[parsed.command].args_model.model_validate(
        parsed.args, context={ALLOW_LOCAL_HOSTS: allow_local_hosts}
    )
