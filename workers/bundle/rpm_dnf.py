"""dnf confined to a private configuration for the bundle's EL package fetch (workers.bundle.rpm_packages):
its own dnf.conf, reposdir, varsdir and plugin configuration, none of the caller's environment but its
proxy settings (`DNF_VAR_*` would rewrite the baseurls, `PYTHONPATH` would reach dnf's Python),
`--releasever` and `--forcearch` from the plan, and an installroot that holds no package, so what it
resolves is what a bare node's `dnf install` takes.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from pathlib import Path

from kobot.errors import StepFailedError
from workers.bundle import package_defaults
from workers.bundle.apt_packages import source_url
from workers.bundle.debian_tools import debian_tool
from workers.bundle.fetch import rewritten
from workers.bundle.manifest import PackageSource
from workers.bundle.rpm_checks import RepodataEntry, primary_entries, primary_name, tool_environment

URL_SCHEMES = ("http://", "https://", "file://", "ftp://")
"""What dnf gives a package's remote location with."""

RESOLVED = "kobot-resolved "
"""The prefix of each line RESOLVE_SCRIPT prints: one package's remote location."""

RESOLVE_SCRIPT = f"""
import sys
import dnf.cli.main


def listing(cli, base):
    base.resolve(cli.demands.allow_erasing)
    for package in sorted(base.transaction.install_set):
        sys.stdout.write({RESOLVED!r} + package.remote_location() + "\\n")
    return 0


dnf.cli.main.resolving = listing
sys.exit(dnf.cli.main.main(sys.argv[1:]))
"""
"""dnf's own command line (`install --assumeno`), its configuration read exactly as `dnf` reads it, whose
resolved transaction is printed instead of run: dnf 4 has no machine-readable listing of what an
install takes, and its table wraps long names. Run by the Python that runs dnf."""


class PrivateDnf:
    """dnf confined to a private configuration: its own dnf.conf, reposdir, varsdir and plugin
    configuration, the plan's release and architecture, an installroot that holds dnf's cache and the
    keys its gpgcheck imported, never a package."""

    def __init__(self, scratch: Path, *, cache: Path, release: str, basearch: str, family: str) -> None:
        self.scratch = scratch
        self.release = release
        self.basearch = basearch
        self.family = family
        self.root = cache / "root"
        self.downloads = cache / "rpms"
        for folder in (scratch / "repos.d", scratch / "vars", scratch / "plugins.d", scratch / "home"):
            folder.mkdir(parents=True, exist_ok=True)
        self.downloads.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = scratch / "dnf.conf"
        # cachedir, logdir and persistdir are taken inside the installroot: the cache survives the build.
        # gpgcheck: `install --downloadonly` checks each download against the source's gpgkey list (the
        # plan's keys), a defence only: rpmkeys' check against those keys alone decides (_refuse_unsigned).
        # install_weak_deps=0 and best=1 shape the one transaction the closure is.
        self.config.write_text(
            "[main]\n"
            "gpgcheck=1\n"
            "repo_gpgcheck=0\n"
            "localpkg_gpgcheck=1\n"
            "keepcache=1\n"
            "install_weak_deps=0\n"
            "best=1\n"
            "skip_if_unavailable=0\n"
            "strict=1\n"
            "zchunk=0\n"
            "gpgkey_dns_verification=0\n"
            f"reposdir={scratch / 'repos.d'}\n"
            f"varsdir={scratch / 'vars'}\n"
            f"pluginconfpath={scratch / 'plugins.d'}\n"
            "cachedir=/cache\n"
            "logdir=/log\n"
            "persistdir=/persist\n"
            f"module_platform_id=platform:el{release}\n"
        )
        self.baseurls: dict[str, str] = {}

    def write_repos(
        self, sources: Sequence[PackageSource], *, upstream: dict[str, str], keys: dict[str, bytes]
    ) -> None:
        """One .repo stanza per source, its baseurl as `upstream` rewrites it and the plan's release and
        arch expand it (checked: one line, an allowed scheme), gpgcheck against `keys`."""
        key_dir = self.scratch / "keys"
        key_dir.mkdir(exist_ok=True)
        for fingerprint, key in keys.items():
            (key_dir / f"{fingerprint}.asc").write_bytes(key)
        gpgkeys = " ".join(f"file://{key_dir / fingerprint}.asc" for fingerprint in sorted(keys))
        stanzas = []
        for source in sources:
            baseurl = source_url(self._expanded(rewritten(source.uri, upstream)), family=self.family)
            # the repo id names the URL: a changed source gets its own cache, never another's metadata
            repoid = f"kobot-{hashlib.sha256(baseurl.encode()).hexdigest()[:12]}"
            self.baseurls[repoid] = baseurl
            stanzas.append(
                f"[{repoid}]\nname={repoid}\nbaseurl={baseurl}\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=0\n"
                f"gpgkey={gpgkeys}\n"
            )
        (self.scratch / "repos.d" / "kobot-bundle.repo").write_text("\n".join(stanzas))

    def makecache(self) -> None:
        """Fetch every source's repodata; any source that cannot be read stops the build."""
        done = self._run(["makecache", "--refresh"], timeout=package_defaults.DNF_METADATA_TIMEOUT_SECONDS)
        if done.returncode != 0:
            raise StepFailedError(
                f"the upstream repodata of {self.family} ({self.basearch}) could not be fetched: "
                f"{_errors(done)}",
                task="packages",
            )

    def closure_urls(self, wanted: Sequence[str]) -> list[str]:
        """Where every package installing `wanted` on a bare node takes is downloaded from."""
        done = self._run(
            # --assumeno outranks --assumeyes: should the listing not take, dnf still installs nothing
            ["install", "--assumeno", "--", *wanted],
            timeout=package_defaults.DNF_RESOLVE_TIMEOUT_SECONDS,
            script=RESOLVE_SCRIPT,
        )
        if done.returncode != 0:
            raise StepFailedError(
                f"{self.family}'s packages cannot be resolved against its upstream ({self.basearch}): "
                f"{_errors(done)}",
                task="packages",
            )
        urls = {
            line.removeprefix(RESOLVED).strip()
            for line in done.stdout.splitlines()
            if line.startswith(RESOLVED)
        }
        if not urls or not all(url.startswith(URL_SCHEMES) for url in urls):
            raise StepFailedError(
                f"dnf's resolver listed no download location for {self.family}'s packages ({self.basearch}): "
                "this dnf is not the dnf 4 kobot reads the transaction of",
                task="packages",
            )
        return sorted(urls)

    def download(self, packages: Sequence[str]) -> None:
        """Download exactly `packages` (name-epoch:version-release.arch, the resolved transaction) into
        the cache, keeping every copy that still matches the repodata."""
        done = self._run(
            ["install", "--downloadonly", f"--destdir={self.downloads}", "--", *packages],
            timeout=package_defaults.DNF_DOWNLOAD_TIMEOUT_SECONDS,
        )
        if done.returncode != 0:
            raise StepFailedError(
                f"{self.family}'s packages could not be downloaded ({self.basearch}: {_errors(done)}); run "
                "the build again to resume",
                task="packages",
            )

    def repodata(self) -> dict[str, RepodataEntry]:
        """Download URL → the package as the repodata dnf fetched lists it, for every source."""
        listed: dict[str, RepodataEntry] = {}
        for repoid, baseurl in self.baseurls.items():
            cached = sorted(
                (self.root / "cache").glob(f"{repoid}-*/repodata/repomd.xml"), key=lambda p: p.stat().st_mtime
            )
            if not cached:
                raise StepFailedError(f"dnf kept no repodata of {baseurl}", task="packages")
            repodata = cached[-1].parent
            primary = repodata / primary_name(cached[-1])
            for href, base, entry in primary_entries(primary):
                listed[f"{(base or baseurl).rstrip('/')}/{href.lstrip('/')}"] = entry
        return listed

    def _expanded(self, uri: str) -> str:
        for name, value in (("releasever", self.release), ("basearch", self.basearch)):
            uri = uri.replace(f"${{{name}}}", value).replace(f"${name}", value)
        return uri

    def _run(
        self, argv: list[str], *, timeout: float, script: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        options = [
            f"--config={self.config}",
            f"--installroot={self.root}",
            f"--releasever={self.release}",
            f"--forcearch={self.basearch}",
            # on the command line these are the machine's paths, never looked up inside the installroot
            f"--setopt=reposdir={self.scratch / 'repos.d'}",
            f"--setopt=varsdir={self.scratch / 'vars'}",
            "--disableplugin=*",
            "--assumeyes",
            "--quiet",
        ]
        program = debian_tool("dnf", package="dnf")
        command = (
            [_dnf_python(program), "-I", "-c", script, *options, *argv]
            if script
            else [program, *options, *argv]
        )
        try:
            return subprocess.run(  # nosec B603  # dnf (or its Python) by absolute path, an argv list, no shell
                command,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env=tool_environment(self.scratch / "home"),
                cwd=self.scratch,
            )
        except subprocess.TimeoutExpired:
            raise StepFailedError(
                f"dnf {argv[0]} took longer than {timeout:.0f} s; run the build again to resume",
                task="packages",
            ) from None


def _dnf_python(dnf: str) -> str:
    """The interpreter of the `dnf` script (its `#!` line): the Python its modules are installed for."""
    with open(dnf, "rb") as script:
        first = script.readline(256).decode(errors="replace")
    interpreter = first.removeprefix("#!").split()[0] if first.startswith("#!") else ""
    if not interpreter.startswith("/"):
        raise StepFailedError(
            f"{dnf} names no interpreter kobot can run dnf's resolver with", task="packages"
        )
    return interpreter


def _errors(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    wanted = [line for line in lines if line.startswith(("Error", "error", "No package", "Problem"))]
    return " ".join((wanted or lines)[-3:]) or f"exit {done.returncode}"
