"""Every built-in command. Importing this package registers them (see commands.catalog)."""

from commands.definitions import alerts, clusters, general, inspect, jobs, nodes

__all__ = ["alerts", "clusters", "general", "inspect", "jobs", "nodes"]
