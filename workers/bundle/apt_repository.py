"""The bundle's apt repository: indexes written by `apt-ftparchive` (Debian's apt-utils) over the pool
the build filled, and each suite's `Release` signed by kobot's repository key.

Layout under the bundle's `files/packages/` (the repository host serves it as `package_repo_url`, and
base_os points the nodes at `<that> <their release> main`, `signed-by=` the key beside it):

    gpg.key                                   the public key (armored)
    pool/<suite>/<name>_<version>_<arch>.deb   one family's closure
    dists/<suite>/main/binary-<arch>/Packages(.gz)
    dists/<suite>/Release, InRelease, Release.gpg
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from kobot.errors import StepFailedError
from workers.bundle import package_defaults
from workers.bundle.apt_signing import RepositorySigner
from workers.bundle.debian_tools import debian_tool

COMPONENT = "main"
"""The one component of every suite (what base_os names)."""

ORIGIN = "kobot"
"""Origin and Label of the repository's Release files."""

PUBLIC_KEY = "gpg.key"
"""The public key's name beside the repository (cluster_defaults' `offline_repo_gpg_key_url`)."""

_NO_WEAK_HASHES = [
    "-oAPT::FTPArchive::MD5=false",
    "-oAPT::FTPArchive::SHA1=false",
]


def write_apt_repository(
    root: Path, *, suites: dict[str, Sequence[str]], signer: RepositorySigner
) -> list[Path]:
    """Index and sign `root` (`files/packages`) for each suite → its architectures; the Release files."""
    releases = []
    for suite, arches in sorted(suites.items()):
        dist = root / "dists" / suite
        shutil.rmtree(dist, ignore_errors=True)  # nothing of a previous build's indexes may linger
        for arch in arches:
            binary = dist / COMPONENT / f"binary-{arch}"
            binary.mkdir(parents=True)
            index = _ftparchive(root, [*_NO_WEAK_HASHES, "--arch", arch, "packages", f"pool/{suite}"])
            (binary / "Packages").write_bytes(index)
            (binary / "Packages.gz").write_bytes(gzip.compress(index, mtime=0))
        release = _ftparchive(
            root,
            [
                *_NO_WEAK_HASHES,
                f"-oAPT::FTPArchive::Release::Origin={ORIGIN}",
                f"-oAPT::FTPArchive::Release::Label={ORIGIN}",
                f"-oAPT::FTPArchive::Release::Suite={suite}",
                f"-oAPT::FTPArchive::Release::Codename={suite}",
                f"-oAPT::FTPArchive::Release::Architectures={' '.join(arches)}",
                f"-oAPT::FTPArchive::Release::Components={COMPONENT}",
                "release",
                f"dists/{suite}",
            ],
        )
        (dist / "Release").write_bytes(release)
        releases.append(dist / "Release")
    public_key = signer.sign(releases)
    (root / PUBLIC_KEY).write_bytes(public_key)
    return releases


def _ftparchive(cwd: Path, args: list[str]) -> bytes:
    limit = package_defaults.APT_FTPARCHIVE_TIMEOUT_SECONDS
    try:
        done = subprocess.run(  # nosec B603  # apt-ftparchive by absolute path, an argv list, no shell
            [debian_tool("apt-ftparchive", package="apt-utils"), *args],
            cwd=cwd,
            capture_output=True,
            timeout=limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise StepFailedError(f"apt-ftparchive took longer than {limit:.0f} s", task="packages") from None
    if done.returncode != 0:
        raise StepFailedError(
            f"apt-ftparchive failed: {done.stderr.decode(errors='replace').strip()[-300:]}", task="packages"
        )
    return done.stdout
