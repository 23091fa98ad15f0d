"""The bundle's `files/` tree as one tar, the way `setup repository` hands it to the repository host.

Ansible's `copy` of a directory stats and copies file by file, a module run each: a bundle's hundreds of
packages took minutes to load, and as long again to find nothing changed on a second run. One archive is
one transfer and one unpack. It carries a marker member named after it, which the role's `unarchive`
takes as `creates`: a host that already unpacked this bundle's files skips both.

Members are root's, files 0644 and folders 0755 as the file server serves them; the `sha256/<hex>` entries
stay the relative links the build made. The archive is made once per bundle (its name carries the sha256
of the bundle's `bundle.json`) beside the bundle's folder, not in it, so a later `bundle build --tarball`
into the same folder does not pack it; the archives of earlier bundles are removed.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

ARCHIVE_INFIX = "-files-"
"""`<bundle folder>-files-<sha256 prefix>.tar` beside the folder: one per bundle, after its `bundle.json`."""

ARCHIVE_NAME_DIGITS = 16
"""Hex digits of the bundle's sha256 in the archive's name: enough to tell bundles apart."""

LOADED_MARKER_PREFIX = ".kobot-loaded-"
"""`files/.kobot-loaded-<archive stem>`: unpacked with the files, what the role's `creates` looks for."""


def files_archive(bundle: Path, *, bundle_sha256: str) -> Path:
    """The tar of `bundle/files` for the bundle whose `bundle.json` has `bundle_sha256`, made if missing."""
    archive = bundle.parent / f"{bundle.name}{ARCHIVE_INFIX}{bundle_sha256[:ARCHIVE_NAME_DIGITS]}.tar"
    if not archive.is_file():
        partial = archive.with_name(archive.name + ".partial")
        _write(bundle / "files", into=partial, marker=loaded_marker(archive))
        os.replace(partial, archive)
    for older in bundle.parent.glob(f"{bundle.name}{ARCHIVE_INFIX}*.tar*"):
        if older != archive:
            older.unlink()
    return archive


def loaded_marker(archive: Path) -> str:
    """The marker member's name, relative to the unpacked files."""
    return LOADED_MARKER_PREFIX + archive.stem


def _write(files: Path, *, into: Path, marker: str) -> None:
    # uncompressed: packages, binaries and image layers are compressed already
    with tarfile.open(into, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(files)), recursive=False, filter=_served)
        info = tarfile.TarInfo(marker)
        info.mode = 0o644
        tar.addfile(_served(info))


def _served(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = "root"
    if member.isdir():
        member.mode = 0o755
    elif member.isfile():
        member.mode = 0o644
    return member
