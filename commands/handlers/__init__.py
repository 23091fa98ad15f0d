"""The handlers of kobot's own commands, one module per group; importing this package attaches them all.

Each handler attaches with `@handles(ArgsModel)` to the command defined on that model in
`commands.definitions` (the alert commands' handlers are in `alerts.commands`, the layer that owns
subscriptions).
"""

from commands.handlers import (
    addons,
    autoheal,
    backups,
    certificates,
    cluster_create,
    clusters,
    compliance,
    general,
    health,
    inspect,
    jobs,
    nodes,
    repository,
)

__all__ = [
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
]
