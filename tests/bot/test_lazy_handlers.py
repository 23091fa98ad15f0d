"""Command handlers are attached after `kobot serve` answers, not before: importing the app loads none of
them (nor the bundle builder and cluster readers they import), and a command that arrives first attaches
them itself. Each case runs in a fresh interpreter, since this test process has long loaded them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import commands.handlers

REPO = Path(__file__).resolve().parents[2]
HEAVY_FOR_HANDLERS = (
    "commands.handlers.cluster_create",
    "commands.handlers.repository",
    "workers.bundle.build",
)


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_importing_the_app_attaches_no_handler() -> None:
    loaded = _run(
        f"import sys, bot.app\nprint(sorted(m for m in {HEAVY_FOR_HANDLERS!r} if m in sys.modules))"
    )
    assert loaded == "[]"


def test_a_command_arriving_before_the_handlers_loads_them_itself() -> None:
    answer = _run(
        "from commands.catalog import load_commands\n"
        "from bot.runtime import handler_of\n"
        "spec = load_commands()['cluster.create']\n"
        "before = spec.handler is None\n"
        "handler = handler_of(spec)\n"
        "print(before, handler is not None and handler is spec.handler)"
    )
    assert answer == "True True"


def test_every_module_that_attaches_handlers_is_loaded() -> None:
    # a new handler module left out of MODULES would be understood but never run
    attaching = set()
    for path in Path(commands.handlers.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        decorators = (
            d
            for node in ast.walk(tree)
            if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
            for d in node.decorator_list
        )
        if any(isinstance(d, ast.Call) and getattr(d.func, "id", "") == "handles" for d in decorators):
            attaching.add(path.stem)
    assert attaching and attaching == set(commands.handlers.MODULES)
