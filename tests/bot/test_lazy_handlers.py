"""Command handlers are attached after `kobot serve` answers, not before: importing the app loads none of
them (nor the bundle builder and cluster readers they import), and a command that arrives first attaches
them itself. Each case runs in a fresh interpreter, since this test process has long loaded them."""

from __future__ import annotations

import ast
from pathlib import Path

import commands.handlers
from tests.support.fresh_python import RUNTIME_WITHOUT_HANDLERS, importer_watch, run_fresh

HEAVY_FOR_HANDLERS = (
    "commands.handlers.cluster_create",
    "commands.handlers.repository",
    "workers.bundle.build",
)


def test_importing_the_app_attaches_no_handler() -> None:
    loaded = run_fresh(
        f"import sys, bot.app\nprint(sorted(m for m in {HEAVY_FOR_HANDLERS!r} if m in sys.modules))"
    )
    assert loaded == "[]"


def test_a_command_arriving_before_the_handlers_loads_them_itself() -> None:
    answer = run_fresh(
        "import asyncio\n"
        "from commands.catalog import load_commands\n"
        "from bot.runtime import handler_of\n"
        "spec = load_commands()['cluster.create']\n"
        "before = spec.handler is None\n"
        "handler = asyncio.run(handler_of(spec))\n"
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


def test_a_command_waiting_for_the_load_leaves_the_event_loop_free() -> None:
    # the load imports most of kobot; on the loop it would stall every ack and /healthz meanwhile
    answer = run_fresh(
        "import asyncio\n"
        "from commands.catalog import load_commands\n"
        "from bot.runtime import handler_of\n"
        "spec = load_commands()['cluster.create']\n"
        "async def main():\n"
        "    ticks = 0\n"
        "    async def tick():\n"
        "        nonlocal ticks\n"
        "        while True:\n"
        "            ticks += 1\n"
        "            await asyncio.sleep(0.005)\n"
        "    ticker = asyncio.create_task(tick())\n"
        "    handler = await handler_of(spec)\n"
        "    ticker.cancel()\n"
        "    print(ticks > 3, handler is not None)\n"
        "asyncio.run(main())"
    )
    assert answer == "True True"


def test_the_first_chat_event_loads_the_command_catalog_off_the_event_loop(
    redis_url: str, data_dir: Path
) -> None:
    """Parsing needs every command's definition; the first event after a start imported them on the
    event loop (about 100 ms every other request waited behind). The import now runs on a thread."""
    answer = run_fresh(
        importer_watch("commands.definitions") + RUNTIME_WITHOUT_HANDLERS + "import asyncio\n"
        "from bot.dispatcher import Dispatcher\n"
        "loaded_before = 'commands.definitions' in sys.modules\n"
        "asyncio.run(Dispatcher(runtime=runtime).on_message(message))\n"
        "runtime.close()\n"
        "print(loaded_before, importers, len(recording.deliveries) > 0)",
        redis_url,
        str(data_dir),
    )
    assert answer.startswith("False ['"), answer
    assert "MainThread" not in answer and answer.endswith(" True"), answer
