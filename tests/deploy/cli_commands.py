"""Whether an argument list is one `kobot` would accept, checked against its CLI parser (bot/cli.py)
without running anything: the subcommand must exist and its options and arguments must parse."""

from __future__ import annotations

import typer
import typer.main

from bot.cli import app


def command_problem(args: list[str]) -> str | None:
    """None when `kobot <args>` parses; otherwise what is wrong, naming the subcommands there are."""
    group = typer.main.get_command(app)
    commands = getattr(group, "commands", {})
    names = ", ".join(sorted(commands))
    if not args:
        return f"no subcommand (kobot has {names})"
    name, rest = args[0], args[1:]
    command = commands.get(name)
    if command is None:
        return f"{name!r} is not a kobot subcommand (kobot has {names})"
    try:
        command.make_context(name, list(rest), parent=typer.Context(group, info_name="kobot"))
    except Exception as exc:
        # a usage error (no such option, missing argument): click's, or typer's own copy of click's
        format_message = getattr(exc, "format_message", None)
        if format_message is None:
            raise
        return f"kobot {' '.join(args)}: {format_message()}"
    return None
