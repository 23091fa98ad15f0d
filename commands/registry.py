"""Explicit registry of commands: canonical id, aliases (English and 中文), typed args, permission, risk.

Definitions register with `@command(...)` on their pydantic args model; handlers attach with
`@handles(ArgsModel)`, naming the command by its argument model, so mypy checks each handler against the
model it receives. `help` is generated from this registry.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from commands.context import CommandContext, CommandResult
from commands.parsed import ParsedCommand
from kobot.automation_values import ALLOW_LOCAL_HOSTS
from kobot.risk import Risk

A = TypeVar("A", bound=BaseModel)
"""A command's own argument model."""

M = TypeVar("M", bound=BaseModel)

Handler = Callable[[CommandContext, A], Awaitable[CommandResult]]
"""Runs one command: the context and the command's own argument model in, a reply or a job out."""


@dataclass
class CommandSpec(Generic[A]):
    """Everything kobot knows about one command; `A` is its argument model.

    The registry holds specs of many models (`CommandSpec[Any]`); the dispatcher gets a command's
    arguments from `typed_args`, which validates them into `args_model`, the type `handler` takes."""

    id: str
    aliases: tuple[str, ...]
    """Phrases that name the command, English and Chinese: "create cluster", "创建集群"."""
    args_model: type[A]
    permission: str
    risk: Risk
    summary: str
    examples: tuple[str, ...]
    cluster: str = "none"
    """"required", "optional" or "none": whether the command acts on a cluster."""
    job_kind: str | None = None
    """The job kind a mutating command queues; None for commands answered at once."""
    handler: Handler[A] | None = field(default=None, repr=False)
    risk_rule: Callable[[A], Risk] | None = field(default=None, repr=False)
    """Risk for given args when it depends on them; `risk` is then the highest it can return."""
    prepare: Callable[[str, dict[str, Any]], dict[str, Any]] | None = field(default=None, repr=False)
    """Adjusts raw argument words for the alias used (`缩容 prod 2` means remove two) before validation."""

    def risk_for(self, args: A) -> Risk:
        """The one place a command's risk is decided."""
        return self.risk_rule(args) if self.risk_rule is not None else self.risk


class Registration(Protocol):
    """What `@command(...)` returns: registers the model it decorates and gives it back unchanged."""

    def __call__(self, model: type[M], /) -> type[M]: ...


COMMANDS: dict[str, CommandSpec[Any]] = {}

_BY_MODEL: dict[type[BaseModel], CommandSpec[Any]] = {}
"""Each argument model belongs to one command: `handles` finds the command by it."""


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
) -> Registration:
    """Register a command whose arguments are the decorated pydantic model (one model per command)."""

    def decorate(model: type[M]) -> type[M]:
        if id in COMMANDS:
            raise ValueError(f"command {id} registered twice")
        if model in _BY_MODEL:
            raise ValueError(
                f"{model.__name__} already holds the arguments of {_BY_MODEL[model].id}; "
                f"give {id} a model of its own (a subclass will do)"
            )
        spec = CommandSpec(
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
        COMMANDS[id] = spec
        _BY_MODEL[model] = spec
        return model

    return decorate


def handles(model: type[A]) -> Callable[[Handler[A]], Handler[A]]:
    """Attach the handler of the command whose argument model is `model`.

    mypy checks the handler against `model`; because a handler taking a wider type (a base class,
    `Any`) would pass that check too, registration also refuses any annotation but `model` itself."""
    spec = _BY_MODEL.get(model)
    if spec is None:
        raise LookupError(f"{model.__name__} is no command's argument model; register it with @command first")

    def decorate(handler: Handler[A]) -> Handler[A]:
        taken = _annotated_args(handler)
        if taken is not model:
            raise TypeError(
                f"handler {handler.__qualname__} of {spec.id} takes {_type_name(taken)}; "
                f"it must take {model.__name__}, the command's argument model"
            )
        spec.handler = handler
        return handler

    return decorate


def _annotated_args(handler: Callable[..., object]) -> object:
    """The annotation of the handler's second parameter (the first is the context)."""
    parameters = list(inspect.signature(handler).parameters)
    if len(parameters) != 2:
        raise TypeError(
            f"handler {handler.__qualname__} must take (ctx, args), not ({', '.join(parameters)})"
        )
    try:
        hints = typing.get_type_hints(handler)
    except NameError as exc:
        raise TypeError(
            f"handler {handler.__qualname__}: its annotations do not resolve ({exc}); "
            "define its argument model at module level"
        ) from None
    return hints.get(parameters[1], Any)


def _type_name(annotation: object) -> str:
    return annotation.__name__ if isinstance(annotation, type) else repr(annotation)


def spec_of(parsed: ParsedCommand) -> CommandSpec[Any]:
    """The registered command a parse result names."""
    return COMMANDS[parsed.command]


def typed_args(parsed: ParsedCommand, *, allow_local_hosts: bool = False) -> BaseModel:
    """The arguments as the command's model; `allow_local_hosts` as in `commands.parser.parse`."""
    model: type[BaseModel] = COMMANDS[parsed.command].args_model
    return model.model_validate(parsed.args, context={ALLOW_LOCAL_HOSTS: allow_local_hosts})
