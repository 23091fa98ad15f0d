"""The `kobot` command (`bot.process.main`): `kobot serve` starts without building the command line,
everything else goes through it. Run in fresh interpreters: what a start imports is the point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.process import INTERRUPTED
from tests.support.fresh_python import REPO, run_fresh
from tests.support.network import LOOPBACK, free_port

SERVE_PROBE = (
    "import sys, uvicorn\n"
    "def record(app, **options):\n"
    "    print(sorted(m for m in ('typer', 'bot.cli') if m in sys.modules))\n"
    "uvicorn.run = record\n"
    "from bot.process import main\n"
    "sys.argv = ['kobot', *sys.argv[1:]]\n"
    "main()\n"
)
"""Runs `kobot` with the probe's arguments, uvicorn replaced by a recorder of which of the command
line's modules were imported by the time serve would start serving."""


KOBOT_RUN_SECONDS = 60
"""Longest one `kobot` run may take on a busy machine."""


def _clean_env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KOBOT_")}
    return {**clean, "KOBOT_DATA_DIR": str(tmp_path / "data"), "KOBOT_IN_PROCESS_WORKER": "false"}


def test_kobot_serve_starts_without_the_command_line(tmp_path: Path) -> None:
    assert run_fresh(SERVE_PROBE, "serve", env=_clean_env(tmp_path)) == "[]"


def test_the_probe_sees_the_command_line_when_serve_is_reached_through_it(tmp_path: Path) -> None:
    """The control case: the same probe through `bot.cli`'s own serve command names them, so the empty
    answer above is not the probe failing to see them."""
    probe = SERVE_PROBE.replace("from bot.process import main\n", "from bot.cli import app as main\n")
    assert run_fresh(probe, "serve", env=_clean_env(tmp_path)) == "['bot.cli', 'typer']"


def _kobot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`kobot ARGS` as the console script runs it (`python -m bot`)."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=KOBOT_RUN_SECONDS,
        check=False,
    )


def test_serve_help_and_every_other_command_go_through_the_command_line(tmp_path: Path) -> None:
    done = _kobot("serve", "--help", env=_clean_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "HTTP app and every configured chat adapter" in done.stdout
    parsed = _kobot("parse", "whoami", env=_clean_env(tmp_path))
    assert parsed.returncode == 0, parsed.stderr
    assert '"command":"whoami"' in parsed.stdout.replace(" ", "")


def test_bad_settings_stop_serve_with_exit_2_naming_the_setting(tmp_path: Path) -> None:
    done = _kobot("serve", env={**_clean_env(tmp_path), "KOBOT_HTTP_PORT": "eighty"})
    assert done.returncode == 2
    assert done.stderr.startswith("kobot: ") and "KOBOT_HTTP_PORT" in done.stderr


def test_ctrl_c_while_serve_starts_stops_it_quietly_with_130() -> None:
    """Before uvicorn handles SIGINT itself, Ctrl-C is a KeyboardInterrupt in the start: no traceback."""
    probe = (
        "import sys, bot.serve\n"
        "def interrupted():\n"
        "    raise KeyboardInterrupt\n"
        "bot.serve.serve = interrupted\n"
        "from bot.process import main\n"
        "sys.argv = ['kobot', 'serve']\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=KOBOT_RUN_SECONDS,
        check=False,
    )
    assert done.returncode == INTERRUPTED
    assert "Traceback" not in done.stderr


def test_a_store_that_does_not_answer_stops_serve_with_exit_1_saying_so(tmp_path: Path) -> None:
    nobody = f"redis://{LOOPBACK}:{free_port()}/0"  # a loopback port nothing listens on
    done = _kobot("serve", env={**_clean_env(tmp_path), "KOBOT_REDIS_URL": nobody})
    assert done.returncode == 1
    assert done.stderr.startswith("kobot: ") and "store" in done.stderr and nobody not in done.stderr
