"""`kobot parse TEXT` end to end: the installed entry point in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

KOBOT = Path(sys.executable).parent / "kobot"
CLI_TIMEOUT_SECONDS = 60


def run_parse(text: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOBOT_")}
    return subprocess.run(
        [str(KOBOT), "parse", text],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        env=env,
        check=False,
    )


def test_kobot_parse_prints_the_parsed_command() -> None:
    done = run_parse("缩容 prod 工作节点 2")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "command": "workers.scale",
        "cluster": "prod",
        "args": {"count": None, "delta": -2, "gpu_workers": None, "break_glass": None},
        "risk": "risky",
    }


def test_kobot_parse_explains_a_bad_command_and_exits_2() -> None:
    done = run_parse("creat cluster prod")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "I don't know the command 'creat cluster prod'" in done.stderr
    assert "create cluster prod" in done.stderr
