"""The bundle's dnf repositories: repodata written by `createrepo_c` (Debian's createrepo-c) over the
packages the build fetched, and each `repodata/repomd.xml` signed by kobot's repository key.

Layout under the bundle's `files/packages/` (the repository host serves it as `package_repo_url`, and
base_os points the nodes at `<that>/el<major>/<arch>` with `gpgcheck` and `repo_gpgcheck` on):

    gpg.key                                  kobot's public key: `repo_gpgcheck` checks repomd.xml with it
    <el8|el9>/keys/<fingerprint>.asc         the upstream keys the packages are signed with (`gpgcheck`)
    <el8|el9>/<x86_64|aarch64>/Packages/     one family's closure for one architecture
    <el8|el9>/<x86_64|aarch64>/repodata/     repomd.xml, repomd.xml.asc (detached, armored), primary...

One repository per release and architecture, as a node's `$releasever` and `$basearch` name it: the
two releases carry packages of the same names built for each, and a node must see only its own.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from kobot.errors import StepFailedError
from workers.bundle import package_defaults
from workers.bundle.apt_signing import RepositorySigner
from workers.bundle.debian_tools import debian_tool


def write_rpm_repositories(roots: list[Path], *, signer: RepositorySigner) -> bytes:
    """Index each of `roots` (`files/packages/el9/x86_64`, ...) and sign its repomd.xml; kobot's armored
    public key that verifies them."""
    signed = []
    for root in roots:
        shutil.rmtree(root / "repodata", ignore_errors=True)  # nothing of a previous build may linger
        limit = package_defaults.CREATEREPO_TIMEOUT_SECONDS
        argv = [
            debian_tool("createrepo_c", package="createrepo-c"),
            "--no-database",  # dnf reads the XML; the sqlite copies only double the download
            "--checksum=sha256",
            "--general-compress-type=gz",  # what every dnf and yum of EL 8 and 9 reads
            "--quiet",
            str(root),
        ]
        try:
            done = subprocess.run(  # nosec B603  # createrepo_c by absolute path, an argv list, no shell
                argv, capture_output=True, text=True, timeout=limit, check=False
            )
        except subprocess.TimeoutExpired:
            raise StepFailedError(f"createrepo_c took longer than {limit:.0f} s", task="packages") from None
        if done.returncode != 0:
            raise StepFailedError(
                f"createrepo_c failed on {root.name}: {done.stderr.strip()[-300:]}", task="packages"
            )
        signed.append(root / "repodata" / "repomd.xml")
    return signer.sign_detached(signed)
