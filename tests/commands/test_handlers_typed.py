"""Each command handler takes its command's own argument model, and the registry refuses one that does not.

mypy checks a handler against the model named in `@handles(Model)`; registration also compares the
handler's annotation with the command's model, which catches what mypy lets through (a base class, Any).
"""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import alerts.commands  # noqa: F401  (attaches the alert commands' handlers)
import commands.handlers
from commands.context import CommandContext, CommandResult, reply
from commands.definitions.clusters import ClusterShowArgs
from commands.definitions.common import Args
from commands.definitions.nodes import NodeAddArgs
from commands.registry import COMMANDS, command, handles
from kobot.risk import Risk
from tests.commands.test_catalog import EXPECTED

commands.handlers.load_all()  # attaches kobot's own handlers

REPO = Path(__file__).resolve().parents[2]
MYPY_SECONDS = 300
"""Long enough for a cold mypy run over the packages the snippet imports on a shared two-core machine."""

BUILT_IN = {
    command_id: spec
    for command_id, spec in COMMANDS.items()
    if spec.args_model.__module__.startswith("commands.")
}


def test_the_built_in_commands_are_all_handled() -> None:
    assert set(BUILT_IN) == EXPECTED, "the catalog test lists every built-in command once"
    assert [command_id for command_id, spec in BUILT_IN.items() if spec.handler is None] == []


@pytest.mark.parametrize("command_id", sorted(BUILT_IN))
def test_every_handler_takes_its_commands_own_model(command_id: str) -> None:
    spec = BUILT_IN[command_id]
    assert spec.handler is not None
    ctx_name, args_name = inspect.signature(spec.handler).parameters
    hints = typing.get_type_hints(spec.handler)
    assert hints[ctx_name] is CommandContext
    assert hints[args_name] is spec.args_model, f"{spec.handler.__qualname__} takes {hints[args_name]}"


# --- handlers the registry must refuse: defined at module level so their annotations resolve ---------
async def takes_another_model(ctx: CommandContext, args: NodeAddArgs) -> CommandResult:
    return reply(args.role)


async def takes_the_base(ctx: CommandContext, args: Args) -> CommandResult:
    return reply("any args")


async def takes_any(ctx: CommandContext, args: Any) -> CommandResult:
    return reply("any args")


async def takes_nothing_named(ctx, args):  # type: ignore[no-untyped-def]
    return reply("unannotated")


async def takes_no_args(ctx: CommandContext) -> CommandResult:
    return reply("no args")


@pytest.mark.parametrize(
    ("handler", "named"),
    [
        (takes_another_model, "takes NodeAddArgs"),
        (takes_the_base, "takes Args"),
        (takes_any, "takes Any"),
        (takes_nothing_named, "takes Any"),
        (takes_no_args, "must take (ctx, args)"),
    ],
    ids=["other-model", "base-class", "any", "unannotated", "no-args"],
)
def test_a_handler_of_another_model_is_refused(handler: Any, named: str) -> None:
    before = COMMANDS["cluster.show"].handler
    with pytest.raises(TypeError, match=r"cluster\.show|ctx, args") as refused:
        handles(ClusterShowArgs)(handler)
    assert named in str(refused.value)
    if "must take (ctx, args)" not in named:
        assert "it must take ClusterShowArgs" in str(refused.value)
    assert COMMANDS["cluster.show"].handler is before, "a refused handler replaces nothing"


def test_a_model_of_no_command_cannot_have_a_handler() -> None:
    class Unregistered(BaseModel):
        pass

    with pytest.raises(LookupError, match="Unregistered is no command's argument model"):
        handles(Unregistered)


def test_one_model_belongs_to_one_command() -> None:
    register = command(
        "test.borrowed", aliases=("test borrowed",), risk=Risk.READ, summary="Borrows a model.", examples=()
    )
    with pytest.raises(ValueError, match=r"ClusterShowArgs already holds the arguments of cluster\.show"):
        register(ClusterShowArgs)
    assert "test.borrowed" not in COMMANDS


MISMATCH = """
from commands.context import CommandContext, CommandResult, reply
from commands.definitions.clusters import ClusterShowArgs
from commands.definitions.nodes import NodeAddArgs
from commands.registry import handles


@handles(ClusterShowArgs)
async def shows_a_node(ctx: CommandContext, args: NodeAddArgs) -> CommandResult:
    return reply(args.role)
"""


def test_mypy_refuses_a_handler_of_another_model(tmp_path: Path) -> None:
    """The static half: the handler type is generic in the model, so mypy --strict names the mismatch."""
    snippet = tmp_path / "mismatch.py"
    snippet.write_text(MISMATCH)
    cache = tmp_path / "cache"
    if (REPO / ".mypy_cache").is_dir():
        # `make test` type-checks the packages first: starting from a copy of that cache, mypy checks the
        # snippet alone (about 1 s) instead of everything it imports (about 30 s). A stale copy is only
        # slower: mypy re-checks what changed since.
        shutil.copytree(REPO / ".mypy_cache", cache)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), str(snippet)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=MYPY_SECONDS,
        check=False,
    )
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert 'error: Argument 1 has incompatible type "Callable[[CommandContext, NodeAddArgs]' in checked.stdout
    assert "[arg-type]" in checked.stdout
    assert checked.stdout.count("error:") == 1, checked.stdout
