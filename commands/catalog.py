"""The one way to get the full command registry: importing the definitions registers them."""

from __future__ import annotations

import importlib
import threading
from typing import Any

from commands.registry import COMMANDS, CommandSpec

DEFINITIONS_MODULE = "commands.definitions"

_loaded = threading.Event()


def load_commands() -> dict[str, CommandSpec[Any]]:
    """Every command, built-in ones registered; plugins register more by importing `command` themselves."""
    importlib.import_module(DEFINITIONS_MODULE)
    _loaded.set()
    return COMMANDS


def commands_loaded() -> bool:
    """Whether a `load_commands` has finished (so the next one imports nothing)."""
    return _loaded.is_set()
