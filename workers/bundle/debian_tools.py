"""The Debian programs the bundle's package step runs, found by absolute path (never a shell, never a
name the PATH of the moment resolves to something else mid-build)."""

from __future__ import annotations

import shutil

from kobot.errors import StepFailedError


def debian_tool(name: str, *, package: str) -> str:
    """`name`'s absolute path; a missing one stops the build naming the Debian package that has it."""
    found = shutil.which(name)
    if found is None:
        raise StepFailedError(f"{name} is not installed: install Debian's {package}", task="packages")
    return found
