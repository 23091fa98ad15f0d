"""The one way to get the full command registry: importing the definitions registers them."""

from __future__ import annotations

import importlib
from typing import Any

from commands.registry import COMMANDS, CommandSpec

DEFINITIONS_MODULE = "commands.definitions"


def load_commands() -> dict[str, CommandSpec[Any]]:
    """Every command, built-in ones registered; plugins register more by importing `command` themselves."""
    importlib.import_module(DEFINITIONS_MODULE)
    return COMMANDS
