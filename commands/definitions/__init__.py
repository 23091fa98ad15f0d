"""Every built-in command. Importing this package registers them (see commands.catalog)."""

from commands.definitions import (
    addons,
    alerts,
    autoheal,
    backups,
    certificates,
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
    "alerts",
    "autoheal",
    "backups",
    "certificates",
    "clusters",
    "compliance",
    "general",
    "health",
    "inspect",
    "jobs",
    "nodes",
    "repository",
]
