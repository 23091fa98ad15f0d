"""The apt families' OS packages for `bundle build`: resolved with their dependencies and downloaded by
apt itself, from the upstream repositories the manifest names, every index checked against its
signature.

apt runs against a private tree per family and architecture (its own sources, an empty dpkg status, no
host keyring): `apt-get update` verifies each source's signed index with the keyring the manifest
names for it (`Signed-By`), `apt-get --simulate` resolves the closure of the planned packages from
an empty system, and `apt-get --download-only` fetches it, checking every .deb against the index.
The downloads stay in `packages-cache/<family>` of the bundle folder: a second build keeps what is
there and continues a partial download (apt's own range requests). Each .deb is then checked once
more against the sha256 of the signed index, by kobot, before it joins the bundle's pool.
"""

from __future__ import annotations

import getpass
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kobot.errors import StepFailedError
from workers.bundle import package_defaults
from workers.bundle.debian_tools import debian_tool
from workers.bundle.fetch import rewritten, sha256_of
from workers.bundle.manifest import BuiltPackage, BundleManifest, PackageSource, package_path
from workers.bundle.package_names import refuse_unlike_package_names, require_keyring

PACKAGES_DIR = "packages"
"""The apt repository's folder under the bundle's `files/`: the `package_repo_url` clusters use."""

CACHE_DIR = "packages-cache"
"""apt's download cache in the bundle folder (not served): what a second build resumes from."""

_INST = re.compile(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) .*\[([^\]]+)\]\)")
_FAILED_FETCH = re.compile(r"^E: Failed to fetch (\S+)\s+(.*)$")


@dataclass(frozen=True)
class IndexEntry:
    """One package version as the upstream's signed index lists it."""

    name: str
    version: str
    arch: str
    filename: str
    sha256: str
    size: int

    @property
    def cache_name(self) -> str:
        """The name apt gives the download in its archives folder (an epoch's `:` escaped)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"

    @property
    def pool_name(self) -> str:
        return self.filename.rsplit("/", 1)[-1]


DEBIAN_PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]*")
"""Debian policy's package names: anything else (a leading `-`) apt would read as an option."""

DEBIAN_VERSION_PIN = re.compile(r"[A-Za-z0-9.+~:*-]+")
"""A version or a version glob (`1.32.8-*`) as the plan pins it."""

SOURCE_FIELD = re.compile(r"[^\s\x00-\x1f\x7f]+")
"""One token of a deb822 sources stanza: a space or a newline would add fields (`Trusted: yes`)."""

SOURCE_SCHEMES = ("http://", "https://", "file://")
"""The schemes a package source may be fetched with once the manifest's `upstream` has rewritten it."""


def source_url(url: str, *, family: str) -> str:
    """`url` as a source line of apt or dnf takes it: one token with an allowed scheme. A rewrite of the
    manifest's `upstream` with a newline would add lines to the source (`Trusted: yes`, `gpgcheck=0`),
    and it is applied after the manifest's own sources were checked: so the final URL is checked here."""
    if not SOURCE_FIELD.fullmatch(url) or not url.lower().startswith(SOURCE_SCHEMES):
        raise StepFailedError(
            f"a package source of {family} is {url!r} once the manifest's upstream rewrites it: no single "
            f"URL with a scheme kobot takes ({', '.join(SOURCE_SCHEMES)}); plan it again",
            task="packages",
        )
    return url


def _refuse_what_apt_would_read_as_options(manifest: BundleManifest, *, family: str) -> None:
    """The manifest is an operator's file: a package name like `-oAPT::Get::AllowUnauthenticated=true` or a
    newline in a source would undo the verification this module sets up, so such values are refused."""
    refuse_unlike_package_names(
        manifest, family=family, name=DEBIAN_PACKAGE_NAME, version=DEBIAN_VERSION_PIN, kind="Debian"
    )
    for source in manifest.package_sources:
        if source.family != family:
            continue
        keyring = [str(source.keyring)] if source.keyring else []  # a missing one is named further on
        for value in (source.uri, source.suite, *source.components, *keyring):
            if not SOURCE_FIELD.fullmatch(value):
                raise StepFailedError(
                    f"the manifest's apt source {source.uri!r} has a field with spaces or control "
                    "characters: plan it again",
                    task="packages",
                )


def fetch_apt_family(
    manifest: BundleManifest,
    *,
    family: str,
    suite: str,
    into: Path,
    progress: Callable[[str], None],
) -> list[BuiltPackage]:
    """Resolve, download and verify `family`'s planned packages and their dependencies for every
    architecture; put them in the bundle's pool (`files/packages/pool/<suite>/`), which then holds
    exactly that closure."""
    sources = [source for source in manifest.package_sources if source.family == family]
    _refuse_what_apt_would_read_as_options(manifest, family=family)
    wanted = [
        f"{p.name}={p.version}" if p.version else p.name for p in manifest.packages if p.family == family
    ]
    if not sources:
        raise StepFailedError(
            f"the manifest names no apt source for {family}: plan it again", task="packages"
        )
    for source in sources:
        _check_keyring(source)
    cache = into / CACHE_DIR / family
    (cache / "partial").mkdir(parents=True, exist_ok=True)
    pool = into / "files" / PACKAGES_DIR / "pool" / suite
    pool.mkdir(parents=True, exist_ok=True)
    built: dict[str, BuiltPackage] = {}
    for arch in manifest.arch:
        chosen = [s for s in sources if not s.arch or arch in s.arch]
        with tempfile.TemporaryDirectory(prefix="kobot-apt-") as scratch:
            apt = PrivateApt(Path(scratch), arch=arch, archives=cache)
            apt.write_sources(chosen, upstream=manifest.upstream)
            apt.update(family=family)
            entries = apt.index_entries(apt.resolve(wanted, family=family))
            _drop_changed_downloads(cache, entries)
            apt.download(wanted, family=family)
        for entry in entries:
            package = _into_pool(entry, cache=cache, pool=pool, family=family, suite=suite)
            known = built.setdefault(package.path, package)
            if known.sha256 != package.sha256:
                raise StepFailedError(
                    f"{entry.pool_name} of {family} differs between architectures' indexes", task="packages"
                )
        progress(f"packages ({family}, {arch}): {len(entries)} with their dependencies, sha256 verified")
    for stale in pool.iterdir():
        if f"{PACKAGES_DIR}/pool/{suite}/{stale.name}" not in built:
            stale.unlink()  # a previous plan's package: the pool holds exactly this closure
    return sorted(built.values(), key=lambda p: p.path)


class PrivateApt:
    """apt-get and apt-cache confined to a private tree: its own sources and state, an empty dpkg
    status (so the closure is what a bare node needs), one architecture, no keyring but the sources'."""

    def __init__(self, root: Path, *, arch: str, archives: Path) -> None:
        self.root = root
        for folder in ("etc/sources.list.d", "etc/preferences.d", "etc/trusted.gpg.d", "state/lists/partial"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        (root / "log").mkdir(exist_ok=True)
        (root / "etc" / "apt.conf.d").mkdir(exist_ok=True)
        (root / "state" / "status").write_text("")
        # apt reads APT_CONFIG before anything else: pointing its main file and parts into this tree keeps
        # the host's /etc/apt/apt.conf(.d) (hooks, proxies, trust settings) out of the build
        self.config = root / "apt.conf"
        self.config.write_text(
            f'Dir::Etc::main "{root}/etc/apt.conf";\nDir::Etc::parts "{root}/etc/apt.conf.d";\n'
        )
        self._options = {
            "Dir": f"{root}/",
            "Dir::State": f"{root}/state",
            "Dir::State::status": f"{root}/state/status",
            "Dir::Cache": f"{root}/cache",
            "Dir::Cache::archives": f"{archives}/",
            "Dir::Etc": f"{root}/etc",
            "Dir::Etc::sourcelist": "/dev/null",
            "Dir::Etc::sourceparts": f"{root}/etc/sources.list.d",
            "Dir::Etc::preferences": "/dev/null",
            "Dir::Etc::preferencesparts": f"{root}/etc/preferences.d",
            "Dir::Etc::trusted": "/dev/null",
            "Dir::Etc::trustedparts": f"{root}/etc/trusted.gpg.d",
            "Dir::Log": f"{root}/log",
            "Debug::NoLocking": "true",
            "APT::Architecture": arch,
            "APT::Architectures": arch,
            "APT::Install-Recommends": "false",
            "APT::Get::AllowUnauthenticated": "false",
            "Acquire::AllowInsecureRepositories": "false",
            "Acquire::AllowDowngradeToInsecureRepositories": "false",
            "Acquire::Languages": "none",
            # apt drops to `_apt` for downloads when root; that account cannot enter a 0700 data dir
            "APT::Sandbox::User": getpass.getuser(),
        }

    def write_sources(self, sources: Sequence[PackageSource], *, upstream: dict[str, str]) -> None:
        """apt's sources, each URI as `upstream` rewrites it (checked: one line, an allowed scheme)."""
        stanzas = []
        for source in sources:
            lines = [
                "Types: deb",
                f"URIs: {source_url(rewritten(source.uri, upstream), family=source.family)}",
                f"Suites: {source.suite}",
                f"Signed-By: {Path(source.keyring).resolve()}",
            ]
            if source.components:
                lines.append(f"Components: {' '.join(source.components)}")
            stanzas.append("\n".join(lines) + "\n")
        (self.root / "etc" / "sources.list.d" / "kobot-bundle.sources").write_text("\n".join(stanzas))

    def update(self, *, family: str) -> None:
        """Fetch every source's index; a bad or missing signature, or any failed index, stops the build."""
        done = self._run(
            ["apt-get", "--error-on=any", "update"], timeout=package_defaults.APT_UPDATE_TIMEOUT_SECONDS
        )
        if done.returncode != 0:
            raise StepFailedError(
                f"the upstream apt indexes of {family} could not be fetched or verified, nothing of them is "
                f"used: {_errors(done)}",
                task="packages",
            )

    def resolve(self, wanted: Sequence[str], *, family: str) -> list[tuple[str, str, str]]:
        """(name, version, arch) of every package installing `wanted` on a bare node takes."""
        done = self._run(
            ["apt-get", "--simulate", "--quiet", "install", *wanted],
            timeout=package_defaults.APT_RESOLVE_TIMEOUT_SECONDS,
        )
        if done.returncode != 0:
            raise StepFailedError(
                f"{family}'s packages cannot be resolved against its upstream: {_errors(done)}",
                task="packages",
            )
        return [
            (match.group(1), match.group(2), match.group(3))
            for line in done.stdout.splitlines()
            if (match := _INST.match(line))
        ]

    def index_entries(self, resolved: Sequence[tuple[str, str, str]]) -> list[IndexEntry]:
        """What the signed indexes list for each resolved package (its sha256 above all)."""
        if not resolved:
            return []
        done = self._run(
            ["apt-cache", "show", "--no-all-versions", *(f"{n}:{a}={v}" for n, v, a in resolved)],
            timeout=package_defaults.APT_RESOLVE_TIMEOUT_SECONDS,
        )
        if done.returncode != 0:
            raise StepFailedError(f"apt-cache show failed: {_errors(done)}", task="packages")
        listed: dict[tuple[str, str, str], IndexEntry] = {}
        for fields in _paragraphs(done.stdout):
            key = (fields.get("Package", ""), fields.get("Version", ""), fields.get("Architecture", ""))
            if key in listed:
                continue
            if not re.fullmatch(r"[0-9a-f]{64}", fields.get("SHA256", "")):
                raise StepFailedError(
                    f"the upstream index lists no sha256 for {key[0]} {key[1]}: refused", task="packages"
                )
            listed[key] = IndexEntry(
                name=key[0],
                version=key[1],
                arch=key[2],
                filename=fields.get("Filename", ""),
                sha256=fields["SHA256"],
                size=int(fields.get("Size", "0")),
            )
        entries = []
        for name, version, arch in resolved:
            entry = listed.get((name, version, arch)) or listed.get((name, version, "all"))
            if entry is None:
                raise StepFailedError(f"the upstream index does not list {name} {version}", task="packages")
            entries.append(entry)
        return entries

    def download(self, wanted: Sequence[str], *, family: str) -> None:
        done = self._run(
            ["apt-get", "--download-only", "--yes", "--quiet", "install", *wanted],
            timeout=package_defaults.APT_DOWNLOAD_TIMEOUT_SECONDS,
        )
        for failed in Path(self._options["Dir::Cache::archives"], "partial").glob("*.FAILED"):
            failed.unlink()
        if done.returncode == 0:
            return
        for line in done.stderr.splitlines():
            match = _FAILED_FETCH.match(line)
            if match and "Hash Sum mismatch" in done.stderr + done.stdout:
                url = match.group(1)
                raise StepFailedError(
                    f"{url.rsplit('/', 1)[-1]} ({family}): the download from {url} does not match the sha256 "
                    "of the upstream's signed index; refused, nothing of it is kept",
                    task="packages",
                )
        raise StepFailedError(
            f"{family}'s packages could not be downloaded ({_errors(done)}); run the build again to resume",
            task="packages",
        )

    def _run(self, argv: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        options = [f"-o{name}={value}" for name, value in self._options.items()]
        env = {
            **os.environ,
            "LC_ALL": "C",
            "DEBIAN_FRONTEND": "noninteractive",
            "APT_CONFIG": str(self.config),
        }
        program = debian_tool(argv[0], package="apt")
        try:
            return subprocess.run(  # nosec B603  # apt by absolute path, an argv list, no shell
                [program, *options, *argv[1:]],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env=env,
            )
        except subprocess.TimeoutExpired:
            raise StepFailedError(
                f"{argv[0]} {argv[-1]} took longer than {timeout:.0f} s; run the build again to resume",
                task="packages",
            ) from None


def _check_keyring(source: PackageSource) -> None:
    require_keyring(source, verified=source.uri, never="trusts an unsigned index")


def _drop_changed_downloads(cache: Path, entries: Sequence[IndexEntry]) -> None:
    """apt takes a cached .deb of the right size as done: one changed since (same size) is removed here,
    so apt fetches it again."""
    for entry in entries:
        cached = cache / entry.cache_name
        if cached.is_file() and sha256_of(cached) != entry.sha256:
            cached.unlink()


def _into_pool(entry: IndexEntry, *, cache: Path, pool: Path, family: str, suite: str) -> BuiltPackage:
    cached = cache / entry.cache_name
    got = sha256_of(cached) if cached.is_file() else "missing"
    if got != entry.sha256:
        cached.unlink(missing_ok=True)
        raise StepFailedError(
            f"{entry.pool_name} ({family}): sha256 {got} is not the {entry.sha256} of the upstream's signed "
            "index; removed, the next build fetches it again",
            task="packages",
        )
    path = package_path(f"{PACKAGES_DIR}/pool/{suite}/{entry.pool_name}")
    target = pool / entry.pool_name
    if not (target.is_file() and os.path.samefile(target, cached)):
        target.unlink(missing_ok=True)
        try:
            os.link(cached, target)  # one copy on disk: the cache and the pool share it
        except OSError:
            target.write_bytes(cached.read_bytes())
    return BuiltPackage(
        family=family,
        name=entry.name,
        version=entry.version,
        arch=entry.arch,
        path=path,
        sha256=entry.sha256,
        size=cached.stat().st_size,
    )


def _paragraphs(text: str) -> list[dict[str, str]]:
    paragraphs: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if fields:
                paragraphs.append(fields)
            fields = {}
        elif not line[0].isspace() and ":" in line:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return paragraphs


def _errors(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.startswith(("E:", "W:"))]
    return " ".join(lines[-3:]) or f"exit {done.returncode}"
