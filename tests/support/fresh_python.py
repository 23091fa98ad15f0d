"""Python code run in a fresh interpreter at the repository's root: for what a process does from its own
start (what it has imported, its collector's state), which this long-lived test process changed long ago."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FRESH_RUN_SECONDS = 120
"""Longest one run may take on a busy machine."""


def run_fresh(code: str, *args: str, env: Mapping[str, str] | None = None) -> str:
    """What `code` printed (stripped), run with `args` as its sys.argv[1:]; it must exit 0."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=FRESH_RUN_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()
