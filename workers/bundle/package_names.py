"""The check both package fetchers (apt, dnf) make of the manifest's package names and version pins."""

from __future__ import annotations

import re

from kobot.errors import StepFailedError
from workers.bundle.manifest import BundleManifest


def refuse_unlike_package_names(
    manifest: BundleManifest, *, family: str, name: re.Pattern[str], version: re.Pattern[str], kind: str
) -> None:
    """Every package of `family` must be a `kind` package name and version pin (`name`, `version`): the
    manifest is an operator's file, and a value the package tool would read as an option (`-o...`,
    `--setopt=...`) or a glob would undo its checks or fetch what nobody planned."""
    for package in manifest.packages:
        if package.family != family:
            continue
        if not name.fullmatch(package.name) or (package.version and not version.fullmatch(package.version)):
            raise StepFailedError(
                f"the manifest's package {package.name!r} {package.version or ''} is no {kind} package name "
                "and version: plan it again",
                task="packages",
            )
