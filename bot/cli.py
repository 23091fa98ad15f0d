"""`kobot`: chat (terminal), serve (HTTP + chat adapters), worker (forking RQ worker), parse TEXT.

The only place that exits the process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import typer

from kobot import defaults
from kobot.errors import CommandError, KobotError, SettingsError
from kobot.settings import Settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="kobot: run Kubernetes clusters from chat.",
)


def _settings(*, log_to_file: bool = False) -> Settings:
    from kobot.settings import load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.echo(f"kobot: {exc.user_message}", err=True)
        raise typer.Exit(code=2) from None
    log_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if log_to_file:
        # The terminal is the chat: logs go to a file so they do not interleave with replies.
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        logging.basicConfig(
            level=settings.log_level, format=log_format, filename=settings.data_dir / "kobot.log"
        )
    else:
        logging.basicConfig(level=settings.log_level, format=log_format, stream=sys.stderr)
    return settings


@app.command()
def parse(text: str) -> None:
    """Print how kobot understands TEXT as one JSON object (exit 0), or why it does not (exit 2)."""
    from commands.parser import parse as parse_text

    try:
        parsed = parse_text(text)
    except CommandError as exc:
        typer.echo(exc.user_message, err=True)
        if exc.suggestions:
            typer.echo("did you mean: " + ", ".join(exc.suggestions), err=True)
        raise typer.Exit(code=2) from None
    typer.echo(parsed.model_dump_json())


@app.command()
def chat() -> None:
    """Terminal chat on the embedded default: commands from stdin, progress printed live."""
    settings = _settings(log_to_file=True)
    try:
        asyncio.run(_chat(settings))
    except KobotError as exc:
        typer.echo(f"kobot: {exc.user_message}", err=True)
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:
        pass


async def _chat(settings: Settings) -> None:
    from bot.chat.terminal.adapter import TerminalAdapter
    from bot.runtime import build_runtime
    from bot.supervisor import Supervisor

    runtime = build_runtime(settings)
    terminal = TerminalAdapter()
    runtime.adapters[terminal.platform] = terminal
    supervisor = Supervisor(runtime=runtime, in_process_worker=settings.in_process_worker)
    try:
        await supervisor.start()
        await terminal.wait_closed()
    finally:
        try:
            await supervisor.stop()
        finally:
            runtime.close()


@app.command()
def serve() -> None:
    """HTTP app and every configured chat adapter (with an in-process worker unless disabled)."""
    import uvicorn

    from bot.app import create_app

    settings = _settings()
    try:
        application = create_app(settings)
    except KobotError as exc:
        typer.echo(f"kobot: {exc.user_message}", err=True)
        raise typer.Exit(code=1) from None
    uvicorn.run(
        application, host=settings.http_host, port=settings.http_port, log_level=settings.log_level.lower()
    )


@app.command()
def worker(burst: bool = typer.Option(False, help="Exit when the queue is empty.")) -> None:
    """A real forking RQ worker for kobot's queue."""
    from kobot.store import open_store
    from workers.worker import run_forking_worker

    settings = _settings()
    store = open_store(settings)
    try:
        run_forking_worker(settings=settings, redis_url=store.url, burst=burst)
    finally:
        store.close()


def main() -> None:
    # Job dirs, runner artifacts, Terraform workspaces and backups are written long after start, by
    # kobot and by the processes it starts; a private umask keeps them all owner-only (0600/0700).
    os.umask(defaults.PROCESS_UMASK)
    app()


if __name__ == "__main__":
    main()
