"""How every `kobot` process starts: `main` is the `kobot` command.

`kobot serve` alone is handed to its module without building the command line: importing typer and
building the options of every other command held serve's way to ready (about 30 ms), for nothing serve
uses. Everything else (`kobot serve --help` included) goes through the command line in `bot.cli`.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, NoReturn

from kobot import defaults
from kobot.errors import SettingsError

if TYPE_CHECKING:
    from kobot.settings import Settings

SERVE_ARGUMENTS = ["serve"]
"""The arguments that start `kobot serve` without the command line (it takes no options)."""

INTERRUPTED = 130
"""Exit code of a `kobot serve` stopped by Ctrl-C while it imports and builds its app, before uvicorn runs
and handles the signal itself (128 + SIGINT, as shells report it)."""

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def main() -> None:
    # Job dirs, runner artifacts, Terraform workspaces and backups are written long after start, by
    # kobot and by the processes it starts; a private umask keeps them all owner-only (0600/0700).
    os.umask(defaults.PROCESS_UMASK)
    _without_httpx_cli()
    _without_pydantic_v1()
    if sys.argv[1:] == SERVE_ARGUMENTS:
        from bot.serve import serve

        try:
            serve()
        except KeyboardInterrupt:
            # Ctrl-C before uvicorn handles it (while starting): a quiet stop, as the command line's
            raise SystemExit(INTERRUPTED) from None
    else:
        from bot.cli import app

        app()


def settings_or_exit(*, log_to_file: bool = False) -> Settings:
    """This process's settings, with logging set up from them; exit 2 naming what is wrong with them."""
    from kobot.settings import load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        exit_saying(exc.user_message, code=2)
    if log_to_file:
        # The terminal is the chat: logs go to a file so they do not interleave with replies.
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        logging.basicConfig(
            level=settings.log_level, format=LOG_FORMAT, filename=settings.data_dir / "kobot.log"
        )
    else:
        logging.basicConfig(level=settings.log_level, format=LOG_FORMAT, stream=sys.stderr)
    return settings


def exit_saying(message: str, *, code: int) -> NoReturn:
    """Say `message` on stderr and end the process with `code` (typer's commands may raise it too)."""
    print(f"kobot: {message}", file=sys.stderr)
    raise SystemExit(code)


def _without_httpx_cli() -> None:
    """httpx loads its own command-line client (rich, pygments: about 0.1 s of every start) whenever its
    dependencies are installed, which they are for `kobot chat`; kobot never runs that client. A None entry
    is how Python marks a module absent: httpx then defines its stub `main` instead."""
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


def _without_pydantic_v1() -> None:
    """FastAPI imports pydantic's v1 compatibility layer (about 50 ms of `kobot serve`'s start) only to
    refuse v1 models, and kobot has none; marked absent, FastAPI takes its no-v1 branch."""
    sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]
