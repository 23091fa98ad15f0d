"""The checks both package fetchers (apt, dnf) make of the manifest: package names, version pins, keyrings."""

from __future__ import annotations

import re
from pathlib import Path

from kobot.errors import StepFailedError
from workers.bundle.manifest import BundleManifest, PackageSource


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


def require_keyring(source: PackageSource, *, verified: str, never: str) -> None:
    """`source` names a keyring file that exists and is not empty, else the build stops saying how to get
    one. `verified`: what the keyring verifies of the source; `never`: what kobot never takes unsigned."""
    if not source.keyring:
        raise StepFailedError(
            f"no keyring verifies {verified} ({source.family}): kobot never {never}. Get the repository's "
            "public key, check its fingerprint where its publisher documents it, and plan with --keyring "
            f"{source.uri.rstrip('/')}=FILE",
            task="packages",
        )
    path = Path(source.keyring)
    if not path.is_file() or path.stat().st_size == 0:
        raise StepFailedError(
            f"the keyring {source.keyring} named for {source.uri} ({source.family}) is missing or empty",
            task="packages",
        )
