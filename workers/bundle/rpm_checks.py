"""What the build checks each downloaded rpm against: the upstream's repodata (the checksum dnf's cached
primary.xml gives it) and the upstream's keys (its signature, checked by `rpmkeys` against an rpm
database holding those keys alone, `%_pkgverify_level all`: an unsigned package is refused)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from xml.etree import ElementTree  # nosec B405  # expat refuses entity bombs, fetches no DTD

from kobot.errors import StepFailedError
from workers.bundle import package_defaults
from workers.bundle.debian_tools import debian_tool

_COMMON = "{http://linux.duke.edu/metadata/common}"
_REPO = "{http://linux.duke.edu/metadata/repo}"
STRONG_CHECKSUMS = ("sha256", "sha384", "sha512")
"""The repodata checksums kobot takes a package's identity from (md5 and sha1 are refused)."""


@dataclass(frozen=True)
class RepodataEntry:
    """One package as the upstream's repodata (primary.xml) lists it."""

    name: str
    epoch: str
    version: str
    release: str
    arch: str
    checksum_type: str
    checksum: str

    @property
    def evr(self) -> str:
        """[epoch:]version-release, the epoch shown only where it is not 0."""
        epoch = f"{self.epoch}:" if self.epoch not in ("", "0") else ""
        return f"{epoch}{self.version}-{self.release}"

    @property
    def nevra(self) -> str:
        """name-epoch:version-release.arch: what dnf takes as exactly this package."""
        return f"{self.name}-{self.epoch or '0'}:{self.version}-{self.release}.{self.arch}"


class PrivateRpmdb:
    """An rpm database that holds the family's upstream keys and nothing else: what each package's
    signature is checked against."""

    def __init__(self, path: Path, *, keys: dict[str, bytes]) -> None:
        self.path = path
        self.home = path.parent / "rpm-home"
        for folder in (path, self.home):
            folder.mkdir(parents=True, exist_ok=True)
        for fingerprint, key in sorted(keys.items()):
            file = path.parent / f"{fingerprint}.asc"
            file.write_bytes(key)
            done = self._run(["--import", str(file)])
            if done.returncode != 0:
                raise StepFailedError(
                    f"rpm cannot use the upstream key {fingerprint}: {done.stderr.strip()[-300:]}",
                    task="packages",
                )

    def unsigned(self, rpms: Sequence[Path]) -> list[tuple[str, str]]:
        """(file name, rpm's verdict) of every package not signed by one of the keys or whose digests
        do not match."""
        if not rpms:
            return []
        done = self._run(["--checksig", *(str(rpm) for rpm in rpms)])
        if done.returncode == 0:
            return []
        bad = [
            (line.split(":", 1)[0].rsplit("/", 1)[-1], line.split(":", 1)[-1].strip())
            for line in done.stdout.splitlines()
            if "NOT OK" in line
        ]
        return bad or [(rpms[0].name, done.stderr.strip()[-300:] or f"exit {done.returncode}")]

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        limit = package_defaults.RPM_CHECKSIG_TIMEOUT_SECONDS
        program = debian_tool("rpmkeys", package="rpm")
        try:
            return subprocess.run(  # nosec B603  # rpmkeys by absolute path, an argv list, no shell
                [program, f"--dbpath={self.path}", "--define", "_pkgverify_level all", *args],
                capture_output=True,
                text=True,
                timeout=limit,
                check=False,
                env=tool_environment(self.home),
            )
        except subprocess.TimeoutExpired:
            raise StepFailedError(
                f"rpmkeys {args[0]} took longer than {limit:.0f} s", task="packages"
            ) from None


def digest_of(path: Path, kind: str) -> str:
    """The hex digest of `path` by hashlib's `kind` (sha256, sha512, ...), read in chunks."""
    digest = hashlib.new(kind)
    with path.open("rb") as stream:
        while chunk := stream.read(1_048_576):
            digest.update(chunk)
    return digest.hexdigest()


def primary_name(repomd: Path) -> str:
    """The file name of the primary metadata a cached repomd.xml names."""
    root = ElementTree.parse(repomd).getroot()  # nosec B314  # see the import
    for data in root.iter(f"{_REPO}data"):
        location = data.find(f"{_REPO}location")
        if data.get("type") == "primary" and location is not None and location.get("href"):
            return str(location.get("href")).rsplit("/", 1)[-1]
    raise StepFailedError(f"{repomd} names no primary metadata", task="packages")


def primary_entries(primary: Path) -> Iterator[tuple[str, str, RepodataEntry]]:
    """(location href, location xml:base, entry) of every package in a cached primary.xml."""
    with _opened(primary) as stream:
        for _event, element in ElementTree.iterparse(stream):  # nosec B314  # see the import
            if element.tag != f"{_COMMON}package":
                continue
            version = element.find(f"{_COMMON}version")
            checksum = element.find(f"{_COMMON}checksum")
            location = element.find(f"{_COMMON}location")
            if version is None or checksum is None or location is None:
                element.clear()
                continue
            entry = RepodataEntry(
                name=element.findtext(f"{_COMMON}name", default=""),
                epoch=version.get("epoch", "0"),
                version=version.get("ver", ""),
                release=version.get("rel", ""),
                arch=element.findtext(f"{_COMMON}arch", default=""),
                checksum_type=checksum.get("type", ""),
                checksum=(checksum.text or "").strip().lower(),
            )
            yield (
                location.get("href", ""),
                location.get("{http://www.w3.org/XML/1998/namespace}base", ""),
                entry,
            )
            element.clear()


class _Compressed(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class _Limited:
    """A read-only stream that refuses to expand past REPODATA_MAX_BYTES (a decompression bomb)."""

    def __init__(self, stream: _Compressed, *, name: str) -> None:
        self._stream = stream
        self._name = name
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size if size > 0 else 1_048_576)
        self._read += len(chunk)
        if self._read > package_defaults.REPODATA_MAX_BYTES:
            raise StepFailedError(
                f"{self._name} expands past {package_defaults.REPODATA_MAX_BYTES} bytes: refused",
                task="packages",
            )
        return chunk

    def __enter__(self) -> _Limited:
        return self

    def __exit__(self, *_: object) -> None:
        self._stream.close()


def _opened(primary: Path) -> _Limited:
    suffix = primary.suffix
    if suffix == ".gz":
        return _Limited(gzip.open(primary, "rb"), name=primary.name)
    if suffix == ".xz":
        return _Limited(lzma.open(primary, "rb"), name=primary.name)
    if suffix == ".bz2":
        return _Limited(bz2.open(primary, "rb"), name=primary.name)
    if suffix == ".xml":
        return _Limited(primary.open("rb"), name=primary.name)
    raise StepFailedError(
        f"the upstream's primary metadata {primary.name} is compressed in a way kobot does not read "
        "(allowed: .xml, .gz, .xz, .bz2)",
        task="packages",
    )


def tool_environment(home: Path) -> dict[str, str]:
    """What dnf and rpm run with: a private HOME (no ~/.rpmmacros), none of the caller's `DNF_VAR_*` or
    `PYTHONPATH` (the venv's must not reach the system Python that runs dnf); proxies pass through."""
    proxies = {
        name: value
        for name, value in os.environ.items()
        if name.lower() in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")
    }
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "HOME": str(home), **proxies}
