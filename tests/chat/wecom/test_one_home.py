"""Each module-level function of the WeCom adapter has one home: a second copy drifts from the first
(task ids, button keys and tag refs must all come from the same digest, or a retried post stops being
the same request)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import bot.chat.wecom

PACKAGE = Path(bot.chat.wecom.__file__).parent


def test_no_function_is_defined_in_two_wecom_modules() -> None:
    homes: dict[str, list[str]] = defaultdict(list)
    for module in sorted(PACKAGE.glob("*.py")):
        for node in ast.parse(module.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                homes[node.name].append(module.name)
    assert homes, "the package was read"
    twice = {name: where for name, where in homes.items() if len(where) > 1}
    assert twice == {}, f"defined more than once: {twice}"
