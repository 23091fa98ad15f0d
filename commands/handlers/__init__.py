"""The handlers of kobot's own commands, one module per group; `load_all()` attaches them all.

Each handler attaches with `@handles(ArgsModel)` to the command defined on that model in
`commands.definitions` (the alert commands' handlers are in `alerts.commands`, the layer that owns
subscriptions). Importing this package alone attaches nothing: a module that needs one helper of it
(`commands.handlers.submit`) does not pull in every handler and what they import (the bundle builder,
the cluster readers), which `kobot serve` loads after it is ready instead of before.
"""

from __future__ import annotations

import importlib

MODULES = (
    "addons",
    "autoheal",
    "backups",
    "certificates",
    "cluster_create",
    "clusters",
    "compliance",
    "general",
    "health",
    "inspect",
    "jobs",
    "nodes",
    "repository",
)
"""Every module of this package that attaches handlers."""


def load_all() -> None:
    """Attach every built-in handler (importing twice is a no-op; Python's import lock makes concurrent
    callers wait for one import)."""
    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")
