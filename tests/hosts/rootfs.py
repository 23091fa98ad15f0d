"""The Debian bookworm root the test hosts run in, built once per machine by debootstrap.

Ansible tasks run against a test host must never change this machine, so each host runs in a
root of its own (an overlay over this cached root), not in a chroot of this machine's files.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

CACHE_DIR = Path("/var/cache/kobot-tests")
"""Outside the repository and kept between sessions: the build takes about a minute."""

ROOT_NAME = "bookworm-root"
"""Directory under CACHE_DIR holding the finished root."""

SUITE = "bookworm"
"""Debian release of the test hosts (the machine's own release, so its mirror carries it)."""

PACKAGES = ("python3", "python3-apt", "sudo", "openssh-server", "iproute2", "procps")
"""What Ansible needs on a managed host, plus sshd and ip for the lab itself."""

RECIPE = f"{SUITE} minbase {' '.join(PACKAGES)} v1"
"""Written into the completion marker: a root built from another recipe is rebuilt."""

MARKER = ".kobot-rootfs-complete"
"""File inside the root that says the build finished; a root without it is discarded."""

BUILD_LOCK_TIMEOUT_SECONDS = 900.0
"""How long a session waits for another session's build before giving up."""

DEBOOTSTRAP_TIMEOUT_SECONDS = 1200.0
"""Upper bound of one debootstrap run on a slow mirror."""

FALLBACK_MIRROR = "http://deb.debian.org/debian"
"""Used only when this machine's apt sources name no Debian mirror."""

SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


class RootfsError(RuntimeError):
    """The test-host root cannot be built here; the message says why."""


def debian_mirror(*, sources: tuple[Path, ...] = SOURCES) -> str:
    """The Debian archive this machine's apt uses, so debootstrap goes where apt already goes."""
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files.extend(sorted(source.glob("*.list")) + sorted(source.glob("*.sources")))
        elif source.is_file():
            files.append(source)
    for path in files:
        text = path.read_text(errors="replace")
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.MULTILINE)
            if uris and suites and SUITE in suites.group(1).split() and uris.group(1).endswith("/debian"):
                return uris.group(1)
        for line in text.splitlines():
            match = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)\s", line.strip() + " ")
            if match and match.group(2) == SUITE and match.group(1).rstrip("/").endswith("/debian"):
                return match.group(1).rstrip("/")
    return FALLBACK_MIRROR


def ensure_rootfs(*, cache_dir: Path = CACHE_DIR) -> Path:
    """The finished root, building it first if no complete one of this recipe exists.

    A lock file serialises sessions; a build is made under a temporary name and renamed when done.
    """
    if os.geteuid() != 0:
        raise RootfsError("the SSH test hosts need root (debootstrap, network namespaces, mounts)")
    if shutil.which("debootstrap") is None:
        raise RootfsError("debootstrap is not installed (tests/apt-packages.txt lists it)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    root = cache_dir / ROOT_NAME
    with (cache_dir / f"{ROOT_NAME}.lock").open("w") as lock:
        _lock(lock.fileno())
        if _complete(root):
            return root
        _build(root=root)
        return root


def _complete(root: Path) -> bool:
    marker = root / MARKER
    return marker.is_file() and marker.read_text().strip() == RECIPE


def _lock(fd: int) -> None:
    deadline = time.monotonic() + BUILD_LOCK_TIMEOUT_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise RootfsError("another session has held the test-host root build lock too long") from None
            time.sleep(1.0)


def _build(*, root: Path) -> None:
    partial = root.with_name(root.name + ".partial")
    for stale in (partial, root):
        if stale.exists():
            shutil.rmtree(stale)
    command = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(partial),
        debian_mirror(),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT_SECONDS, check=False
    )
    if result.returncode != 0:
        raise RootfsError(f"debootstrap failed ({result.returncode}): {result.stdout[-2000:]}{result.stderr}")
    # Host keys made at package install would be shared by every host of every session.
    for key in (partial / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    for deb in (partial / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    (partial / MARKER).write_text(RECIPE + "\n")
    partial.rename(root)
