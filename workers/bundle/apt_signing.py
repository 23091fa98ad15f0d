"""kobot's repository signing key: the OpenPGP key that signs the bundle's apt and dnf repositories.

Generated once (ed25519) and kept encrypted in the store with the repository's other secrets; the
private half exists in plain only in a throwaway GnuPG home while a build signs (0700, removed
afterwards, its agent stopped). The public half ships in the bundle as `packages/gpg.key`, which the
nodes' apt is told to trust for that repository only (`signed-by=`), and dnf checks the repository's
`repomd.xml` with (`repo_gpgcheck`).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from kobot import automation_values
from kobot.errors import StepFailedError
from workers.bundle import package_defaults
from workers.bundle.debian_tools import debian_tool
from workers.cluster_secrets import ClusterSecrets

log = logging.getLogger(__name__)

SIGNING_KEY_SECRET = "apt-signing-key"  # nosec B105  # a secret's name in the store, not its value
SIGNING_KEY_UID = "kobot offline repository <repository@kobot.invalid>"
SIGNING_KEY_EXPIRY = "never"
"""The key signs every bundle a site builds; nodes trust it through the public key they were given, so
an expiry would break installs from a bundle that was fine yesterday. Rotate by deleting the secret."""

GNUPG_HOME_PREFIX = "/tmp"  # nosec B108  # mkdtemp: a new 0700 folder of a random name, removed after
"""Where throwaway GnuPG homes go: a short path keeps gpg-agent's socket under the 108-byte limit."""


def repository_signing_key(secrets: ClusterSecrets) -> bytes:
    """The armored private key: the stored one, or a new one generated and stored (first writer wins)."""
    scope = automation_values.OFFLINE_REPOSITORY_SCOPE
    stored = secrets.get(cluster=scope, name=SIGNING_KEY_SECRET)
    if stored is not None:
        return stored
    with gnupg_home() as home:
        _gpg(home, ["--quick-gen-key", SIGNING_KEY_UID, "ed25519", "sign", SIGNING_KEY_EXPIRY])
        generated = _gpg(home, ["--armor", "--export-secret-keys", SIGNING_KEY_UID])
    return secrets.put_if_absent(cluster=scope, name=SIGNING_KEY_SECRET, value=generated)


class RepositorySigner:
    """Signs apt `Release` files and dnf `repomd.xml` files with kobot's repository key."""

    def __init__(self, *, secret_key: bytes) -> None:
        self._secret_key = secret_key

    def __repr__(self) -> str:
        return "RepositorySigner(<secret key>)"

    def sign(self, releases: Sequence[Path]) -> bytes:
        """Write `InRelease` (clear-signed) and `Release.gpg` (detached) beside each `Release`; the
        armored public key that verifies them."""
        with gnupg_home() as home:
            _gpg(home, ["--import"], stdin=self._secret_key)
            for release in releases:
                for name in ("InRelease", "Release.gpg"):
                    (release.parent / name).unlink(missing_ok=True)
                _gpg(home, ["--clearsign", "--output", str(release.parent / "InRelease"), str(release)])
                _gpg(
                    home,
                    [
                        "--armor",
                        "--detach-sign",
                        "--output",
                        str(release.parent / "Release.gpg"),
                        str(release),
                    ],
                )
            return _gpg(home, ["--armor", "--export", SIGNING_KEY_UID])

    def sign_detached(self, paths: Sequence[Path]) -> bytes:
        """Write an armored detached signature `<name>.asc` beside each file (dnf's `repomd.xml.asc`,
        what `repo_gpgcheck` verifies); the armored public key that verifies them."""
        with gnupg_home() as home:
            _gpg(home, ["--import"], stdin=self._secret_key)
            for path in paths:
                signature = path.with_name(f"{path.name}.asc")
                signature.unlink(missing_ok=True)
                _gpg(home, ["--armor", "--detach-sign", "--output", str(signature), str(path)])
            return _gpg(home, ["--armor", "--export", SIGNING_KEY_UID])


def armored_keys(keyring: Path) -> dict[str, bytes]:
    """Fingerprint → that one public key, armored, of every key in `keyring` (a binary keyring or an
    armored key file): what rpm imports (one key a file) and what the nodes are given."""
    with gnupg_home() as home:
        _gpg(home, ["--import"], stdin=keyring.read_bytes())
        listing = _gpg(home, ["--with-colons", "--fingerprint", "--list-keys"]).decode()
        fingerprints: list[str] = []
        primary = False
        for line in listing.splitlines():
            fields = line.split(":")
            if fields[0] in ("pub", "sub"):
                primary = fields[0] == "pub"
            elif fields[0] == "fpr" and primary:
                fingerprints.append(fields[9])
                primary = False
        return {fpr: _gpg(home, ["--armor", "--export", fpr]) for fpr in fingerprints}


@contextmanager
def gnupg_home() -> Iterator[Path]:
    """A private GnuPG home (0700) that is gone, agent and all, when the block ends."""
    home = Path(tempfile.mkdtemp(prefix="kgpg-", dir=GNUPG_HOME_PREFIX))
    try:
        home.chmod(0o700)
        yield home
    finally:
        try:
            subprocess.run(  # nosec B603  # gpgconf by absolute path, an argv list, no shell
                [debian_tool("gpgconf", package="gpgconf"), "--kill", "all"],
                env=_env(home),
                capture_output=True,
                timeout=package_defaults.GPG_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.SubprocessError, StepFailedError) as exc:
            log.warning("could not stop the signing gpg agent (%s); removing its home anyway", exc)
        finally:
            # the home holds the private key in the clear: it goes whatever happened to the agent
            shutil.rmtree(home, ignore_errors=True)


def _env(home: Path) -> dict[str, str]:
    return {"GNUPGHOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}


def _gpg(home: Path, args: list[str], *, stdin: bytes | None = None) -> bytes:
    gpg = debian_tool("gpg", package="gpg")
    # the key is kept without a passphrase: the store encrypts it, and the home is gone after the build
    options = ["--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]
    options += ["--digest-algo", "SHA512"]
    try:
        done = subprocess.run(  # nosec B603  # gpg by absolute path, an argv list, no shell
            [gpg, *options, *args],
            input=stdin,
            env=_env(home),
            capture_output=True,
            timeout=package_defaults.GPG_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise StepFailedError(
            f"gpg {args[0]} took longer than {package_defaults.GPG_TIMEOUT_SECONDS:.0f} s", task="sign"
        ) from None
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        raise StepFailedError(f"gpg {args[0]} failed: {last}", task="sign")
    return done.stdout
