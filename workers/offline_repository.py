"""Ask a cluster's offline package repository whether it holds kubeadm of a version, instead of guessing.

The install and upgrade roles take kubeadm, kubelet and kubectl from the package mirror of the spec's
`offline_repo.package_repo_url` (an apt source `deb URL <release> main` on Ubuntu, a yum baseurl on
EL), so that mirror's own index is what is read here: apt's `Packages` of the release and architecture,
or the rpm `primary` metadata that `repodata/repomd.xml` names. Each request gets a short timeout and
the whole question a deadline; an index that cannot be read is an answer too (found=False, with the
reason), never a guess.
"""

from __future__ import annotations

import bz2
import lzma
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from xml.etree import ElementTree  # nosec B405  # expat refuses entity bombs, fetches no DTD

import httpx

from kobot import defaults
from kobot.cluster_spec import Arch, OfflineRepository, OsFamily
from workers.bundle.plan import RPM_ARCHES  # rpm's arch names (apt uses kobot's own: amd64, arm64)

PACKAGE = "kubeadm"
"""The package whose version decides: the upgrade installs it first, on the first control-plane node."""

DEBIAN_RELEASES = {OsFamily.UBUNTU2204: "jammy", OsFamily.UBUNTU2404: "noble"}
"""`ansible_distribution_release` of each Ubuntu kobot installs: the apt source's suite."""

EL_RELEASES = {OsFamily.ROCKY8: "el8", OsFamily.ALMA8: "el8", OsFamily.ROCKY9: "el9", OsFamily.ALMA9: "el9"}
"""The bundle's dnf release folder (`packages/el9/...`) of each EL kobot installs: the node's major
release, as base_os's `ansible_distribution_major_version` names it."""


_RPM_COMMON = "{http://linux.duke.edu/metadata/common}"
_RPM_REPO = "{http://linux.duke.edu/metadata/repo}"


@dataclass(frozen=True)
class RepositoryAnswer:
    """What the repository said about one kubeadm version; `asked` is the index URL (no credentials)."""

    found: bool
    asked: str
    reason: str = ""

    def line(self, version: str) -> str:
        """One plan line: where the answer came from."""
        if self.found:
            return f"offline repository holds {PACKAGE} {version} ({self.asked})"
        return f"offline repository: {PACKAGE} {version} not confirmed ({self.asked}): {self.reason}"


class _Unreadable(Exception):
    """The index could not be fetched or read; the message says why, safe for chat."""


def kubeadm_in_repository(
    *,
    repo: OfflineRepository,
    os: OsFamily,
    arch: Arch,
    version: str,
    timeout: float = defaults.OFFLINE_REPOSITORY_TIMEOUT_SECONDS,
    deadline: float = defaults.OFFLINE_REPOSITORY_DEADLINE_SECONDS,
) -> RepositoryAnswer:
    """Whether `repo`'s package index lists kubeadm `version` for `os` and `arch`: each request within
    `timeout` seconds, the whole question within `deadline`."""
    base = repo.package_repo_url.rstrip("/")
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        mirror = _Mirror(client=client, ends=time.monotonic() + deadline, deadline=deadline)
        if os in DEBIAN_RELEASES:
            index = f"{base}/dists/{DEBIAN_RELEASES[os]}/main/binary-{arch.value}/Packages"
            return _ask(index, lambda: _in_apt_index(mirror, index, arch=arch.value, version=version))
        base = rpm_repository_url(repo, os=os, arch=arch)
        index = f"{base}/repodata/repomd.xml"
        return _ask(index, lambda: _in_rpm_repo(mirror, base, arch=RPM_ARCHES[arch.value], version=version))


def rpm_repository_url(repo: OfflineRepository, *, os: OsFamily, arch: Arch) -> str:
    """The dnf repository an EL node of `os` and `arch` is given (base_os's `base_os_offline_rpm_baseurl`
    follows the same rule): a kobot bundle's `<package_repo_url>/el<N>/<arch>` when the files recorded
    with the repository (`file_sha256`) hold `packages/el<N>/...` (the bundle's upstream keys of that
    release), else the mirror itself, a site's own flat yum mirror. Never both: the answer is read where
    the nodes read."""
    base = repo.package_repo_url.rstrip("/")
    release = EL_RELEASES[os]
    if any(path.startswith(f"packages/{release}/") for path in repo.file_sha256):
        return f"{base}/{release}/{RPM_ARCHES[arch.value]}"
    return base


def _ask(index: str, read: Callable[[], bool]) -> RepositoryAnswer:
    asked = _shown(index)
    try:
        found = read()
    except _Unreadable as exc:
        return RepositoryAnswer(found=False, asked=asked, reason=str(exc))
    if found:
        return RepositoryAnswer(found=True, asked=asked)
    return RepositoryAnswer(found=False, asked=asked, reason="the index does not list it")


def _shown(url: str) -> str:
    """The URL without user:password, for chat and logs."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(username=None, password=None)) if parsed.userinfo else url


@dataclass(frozen=True)
class _Mirror:
    client: httpx.Client
    ends: float
    """time.monotonic() by which the whole question is answered."""
    deadline: float

    def fetch(self, url: str) -> bytes | None:
        """The body of `url`, None on 404; at most OFFLINE_INDEX_MAX_BYTES, before `ends`."""
        if time.monotonic() > self.ends:
            raise _Unreadable(f"no complete answer within {self.deadline} s")
        return _fetch(self, url)


def _fetch(mirror: _Mirror, url: str) -> bytes | None:
    limit = defaults.OFFLINE_INDEX_MAX_BYTES
    client = mirror.client
    try:
        with client.stream("GET", url) as response:
            if response.status_code == httpx.codes.NOT_FOUND:
                return None
            if response.status_code != httpx.codes.OK:
                raise _Unreadable(f"{_shown(url)} answered HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if time.monotonic() > mirror.ends:
                    raise _Unreadable(f"no complete answer within {mirror.deadline} s")
                if len(body) > limit:
                    raise _Unreadable(f"{_shown(url)} is larger than {limit} bytes")
            return bytes(body)
    except httpx.TimeoutException:
        raise _Unreadable(f"no answer within {client.timeout.read} s") from None
    except httpx.HTTPError as exc:
        raise _Unreadable(f"unreachable ({type(exc).__name__})") from None


def _decompress(data: bytes, *, suffix: str, url: str) -> bytes:
    """Expand an index by its file suffix, refusing one that expands past the size limit."""
    limit = defaults.OFFLINE_INDEX_MAX_BYTES
    expanded: bytes
    try:
        if suffix == ".gz":
            expanded = zlib.decompressobj(wbits=32 + zlib.MAX_WBITS).decompress(data, limit + 1)
        elif suffix == ".xz":
            expanded = lzma.LZMADecompressor().decompress(data, max_length=limit + 1)
        elif suffix == ".bz2":
            expanded = bz2.BZ2Decompressor().decompress(data, max_length=limit + 1)
        elif suffix == "":
            expanded = data
        else:
            raise _Unreadable(f"{_shown(url)} is {suffix}-compressed; kobot reads gz, xz, bz2 or plain")
    except (zlib.error, lzma.LZMAError, OSError, EOFError):
        raise _Unreadable(f"{_shown(url)} is not valid {suffix} data") from None
    if len(expanded) > limit:
        raise _Unreadable(f"{_shown(url)} expands past {limit} bytes")
    return expanded


# --- apt ---------------------------------------------------------------------------------------------
def _in_apt_index(mirror: _Mirror, index: str, *, arch: str, version: str) -> bool:
    """apt tries Packages.xz, .gz, then plain; so does this, taking the first the mirror has."""
    for suffix in (".xz", ".gz", ""):
        data = mirror.fetch(index + suffix)
        if data is not None:
            text = _decompress(data, suffix=suffix, url=index + suffix).decode("utf-8", "replace")
            return any(
                stanza.get("Package") == PACKAGE
                and stanza.get("Architecture") in (arch, "all")
                and _upstream(stanza.get("Version", "")) == version
                for stanza in _stanzas(text)
            )
    raise _Unreadable("the mirror has no Packages index there (HTTP 404)")


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    """The paragraphs of a Debian control file as field → value (continuation lines dropped)."""
    for paragraph in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in paragraph.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        if fields:
            yield fields


def _upstream(debian_version: str) -> str:
    """`1:1.31.2-1.1` → `1.31.2`: without epoch and Debian revision, as the roles pin `=1.31.2-*`."""
    without_epoch = debian_version.partition(":")[2] or debian_version
    return without_epoch.rpartition("-")[0] or without_epoch


# --- rpm ---------------------------------------------------------------------------------------------
def _in_rpm_repo(mirror: _Mirror, base: str, *, arch: str, version: str) -> bool:
    repomd_url = f"{base}/repodata/repomd.xml"
    repomd = mirror.fetch(repomd_url)
    if repomd is None:
        raise _Unreadable("the mirror has no repodata/repomd.xml (HTTP 404)")
    href = _primary_href(repomd, url=repomd_url)
    primary_url = f"{base}/{href}"
    data = mirror.fetch(primary_url)
    if data is None:
        raise _Unreadable(f"repomd.xml names {href}, which the mirror does not have (HTTP 404)")
    suffix = next((s for s in (".gz", ".xz", ".bz2", ".zst") if href.endswith(s)), "")
    primary = _decompress(data, suffix=suffix, url=primary_url)
    return any(
        name == PACKAGE and pkg_arch in (arch, "noarch") and ver == version
        for name, pkg_arch, ver in _rpm_packages(primary, url=primary_url)
    )


def _parse_xml(data: bytes, *, url: str) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(data)  # nosec B314  # see the import
    except ElementTree.ParseError:
        raise _Unreadable(f"{_shown(url)} is not well-formed XML") from None


def _primary_href(repomd: bytes, *, url: str) -> str:
    for data in _parse_xml(repomd, url=url).iter(f"{_RPM_REPO}data"):
        location = data.find(f"{_RPM_REPO}location")
        if data.get("type") == "primary" and location is not None and location.get("href"):
            href = str(location.get("href"))
            if href.startswith("/") or ".." in href.split("/"):
                raise _Unreadable(f"repomd.xml names primary metadata outside the repository: {href}")
            return href
    raise _Unreadable("repomd.xml names no primary metadata")


def _rpm_packages(primary: bytes, *, url: str) -> Iterator[tuple[str, str, str]]:
    """(name, arch, ver) of every package in rpm primary metadata."""
    for package in _parse_xml(primary, url=url).iter(f"{_RPM_COMMON}package"):
        version = package.find(f"{_RPM_COMMON}version")
        yield (
            package.findtext(f"{_RPM_COMMON}name", default=""),
            package.findtext(f"{_RPM_COMMON}arch", default=""),
            "" if version is None else version.get("ver", ""),
        )
