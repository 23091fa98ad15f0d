"""The EL families' OS packages for `bundle build`: resolved with their dependencies and downloaded by
dnf itself, from the upstream repositories the manifest names, every package's signature checked
against the keys the plan names for its family.

dnf runs with a private configuration per family and architecture (workers.bundle.rpm_dnf), in an
installroot that holds no package, so the closure is what a bare node needs.
All planned packages of a release and architecture are resolved together, in one transaction as a node's
`dnf install` of them resolves it (a union of per-package closures can miss what only the set together
needs: two providers of one capability, one of them conflicting with another planned package), weak
dependencies (Recommends) left out as the apt side leaves them out, the best candidate or none.
dnf's own resolver lists that transaction (RESOLVE_SCRIPT); `dnf install --downloadonly` of exactly those
packages fetches it, librepo checking each rpm against the checksum of the upstream repodata. kobot
then checks each one again against that repodata (read from dnf's cache) and its signature with
`rpmkeys` against the family's keys alone, with `%_pkgverify_level all`: an unsigned or unknown-key
package is refused. EL distributions do not sign their repodata, so the packages' signatures are what
the trust rests on (`gpgcheck`).

The downloads stay in `packages-cache/<family>/<arch>/` of the bundle folder: a second build reuses what
still matches the repodata and fetches a changed or partial one again, whole.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from kobot.errors import StepFailedError
from workers.bundle.apt_packages import CACHE_DIR, PACKAGES_DIR, SOURCE_FIELD
from workers.bundle.apt_signing import armored_keys
from workers.bundle.fetch import sha256_of
from workers.bundle.manifest import BuiltPackage, BundleManifest, PackageSource, package_path
from workers.bundle.package_names import refuse_unlike_package_names, require_keyring
from workers.bundle.plan import RPM_ARCHES
from workers.bundle.rpm_checks import STRONG_CHECKSUMS, PrivateRpmdb, RepodataEntry, digest_of
from workers.bundle.rpm_dnf import PrivateDnf

KEYS_DIR = "keys"
"""Folder beside a family's architectures holding the upstream keys its packages are signed with."""

RPM_PACKAGE_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+-]*")
"""An rpm package name: no glob, no path or URL, no leading `-` that dnf would read as an option."""

RPM_VERSION_PIN = re.compile(r"[A-Za-z0-9._+~^*-]+")
"""A version or a version glob (`1.32.8`, `1.32.*`) as the plan pins it."""


def refuse_what_dnf_would_read_as_options(manifest: BundleManifest, *, family: str) -> None:
    """The manifest is an operator's file: a package named `--setopt=gpgcheck=0` or `*`, or a newline in
    a source's URL, would undo the checks this module sets up or fetch what nobody planned: refused."""
    refuse_unlike_package_names(
        manifest, family=family, name=RPM_PACKAGE_NAME, version=RPM_VERSION_PIN, kind="rpm"
    )
    for source in manifest.package_sources:
        if source.family != family:
            continue
        keyring = [str(source.keyring)] if source.keyring else []  # a missing one is named further on
        if (
            source.suite
            or source.components
            or not all(SOURCE_FIELD.fullmatch(value) for value in (source.uri, *keyring))
        ):
            raise StepFailedError(
                f"the manifest's dnf source {source.uri!r} has a field with spaces or control characters, "
                "or apt's suite and components: plan it again",
                task="packages",
            )


def fetch_el_family(
    manifest: BundleManifest,
    *,
    family: str,
    release: str,
    into: Path,
    progress: Callable[[str], None],
) -> tuple[list[BuiltPackage], dict[str, bytes]]:
    """Resolve, download and verify `family`'s planned packages and their dependencies for every
    architecture into `files/packages/<family>/<arch>/Packages/`, which then holds exactly that closure;
    the packages and the upstream keys they were checked with (fingerprint → armored key)."""
    refuse_what_dnf_would_read_as_options(manifest, family=family)
    sources = [source for source in manifest.package_sources if source.family == family]
    if not sources:
        raise StepFailedError(
            f"the manifest names no dnf source for {family}: plan it again", task="packages"
        )
    for source in sources:
        _check_keyring(source)
    wanted = [
        f"{p.name}-{p.version}" if p.version else p.name for p in manifest.packages if p.family == family
    ]
    keys = _family_keys(sources)
    built: list[BuiltPackage] = []
    with tempfile.TemporaryDirectory(prefix="kobot-dnf-") as scratch:
        rpmdb = PrivateRpmdb(Path(scratch) / "rpmdb", keys=keys)
        for arch in manifest.arch:
            basearch = RPM_ARCHES[arch]
            cache = into / CACHE_DIR / family / basearch
            dnf = PrivateDnf(
                Path(scratch) / basearch, cache=cache, release=release, basearch=basearch, family=family
            )
            dnf.write_repos(sources, upstream=manifest.upstream, keys=keys)
            pool = into / "files" / PACKAGES_DIR / family / basearch / "Packages"
            here = _fetch_arch(dnf, wanted=wanted, pool=pool, rpmdb=rpmdb)
            built += here
            progress(
                f"packages ({family}, {basearch}): {len(here)} with their dependencies, sha256 and "
                "signature verified"
            )
    return sorted(built, key=lambda p: p.path), keys


def _fetch_arch(
    dnf: PrivateDnf, *, wanted: Sequence[str], pool: Path, rpmdb: PrivateRpmdb
) -> list[BuiltPackage]:
    """One architecture's closure, downloaded, checked and in `pool`, which then holds nothing else."""
    family = dnf.family
    dnf.makecache()
    urls = dnf.closure_urls(wanted)
    listed = dnf.repodata()
    missing = [url for url in urls if url not in listed]
    if missing:
        raise StepFailedError(
            f"the upstream repodata of {family} does not list {missing[0]}", task="packages"
        )
    names = [url.rsplit("/", 1)[-1] for url in urls]
    if len(set(names)) != len(names):
        raise StepFailedError(
            f"two upstream repositories of {family} serve different packages under one file name "
            f"({sorted(n for n in names if names.count(n) > 1)[0]}): plan fewer sources",
            task="packages",
        )
    for name in names:  # an upstream's file name becomes a path of the bundle: checked before any download
        try:
            package_path(f"{PACKAGES_DIR}/{family}/{dnf.basearch}/Packages/{name}")
        except ValueError as exc:
            raise StepFailedError(
                f"the upstream of {family} names a file kobot does not take: {exc}", task="packages"
            ) from None
    try:
        dnf.download([listed[url].nevra for url in urls])
    except StepFailedError:
        # dnf's own gpgcheck refuses a bad signature first: name the package, and drop it from the cache
        _refuse_unsigned(rpmdb, [dnf.downloads / n for n in names if (dnf.downloads / n).is_file()], dnf=dnf)
        raise
    pool.mkdir(parents=True, exist_ok=True)
    fetched = [
        _into_pool(listed[url], name=name, downloads=dnf.downloads, pool=pool, family=family)
        for url, name in zip(urls, names, strict=True)
    ]
    _refuse_unsigned(rpmdb, [pool / name for name in names], dnf=dnf)
    for stale in pool.iterdir():
        if stale.name not in names:
            stale.unlink()  # a previous plan's package: the pool holds exactly this closure
    return fetched


def _refuse_unsigned(rpmdb: PrivateRpmdb, rpms: Sequence[Path], *, dnf: PrivateDnf) -> None:
    """Stop the build at the first of `rpms` not signed by the family's keys, removing every such one
    from the pool and the cache (the next build fetches them again)."""
    unsigned = rpmdb.unsigned(rpms)
    if not unsigned:
        return
    for name, _ in unsigned:
        for folder in {rpm.parent for rpm in rpms} | {dnf.downloads}:
            (folder / name).unlink(missing_ok=True)
    bad, why = unsigned[0]
    raise StepFailedError(
        f"{bad} ({dnf.family}) is not signed by a key the plan names for {dnf.family} ({why}): removed, "
        "nothing of this build is used",
        task="packages",
    )


def _check_keyring(source: PackageSource) -> None:
    require_keyring(source, verified=f"the packages of {source.uri}", never="takes an unsigned package")


def _family_keys(sources: Sequence[PackageSource]) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for keyring in sorted({source.keyring for source in sources}):
        try:
            found = armored_keys(Path(keyring))
        except StepFailedError:
            raise StepFailedError(
                f"the keyring {keyring} holds no OpenPGP key gpg can read", task="packages"
            ) from None
        if not found:
            raise StepFailedError(f"the keyring {keyring} holds no public key", task="packages")
        keys.update(found)
    return keys


def _into_pool(entry: RepodataEntry, *, name: str, downloads: Path, pool: Path, family: str) -> BuiltPackage:
    downloaded = downloads / name
    if entry.checksum_type not in STRONG_CHECKSUMS:
        raise StepFailedError(
            f"the upstream's repodata gives {name} ({family}) a {entry.checksum_type or 'missing'} checksum: "
            f"refused, kobot checks packages by {', '.join(STRONG_CHECKSUMS)} only",
            task="packages",
        )
    expected = entry.checksum
    got = digest_of(downloaded, entry.checksum_type) if downloaded.is_file() else ""  # read once if sha256
    if got != expected:
        downloaded.unlink(missing_ok=True)
        raise StepFailedError(
            f"{name} ({family}): {entry.checksum_type} {got or 'missing'} is not the {expected} of the "
            "upstream's repodata; removed, the next build fetches it again",
            task="packages",
        )
    path = package_path(f"{PACKAGES_DIR}/{family}/{pool.parent.name}/Packages/{name}")
    target = pool / name
    if not (target.is_file() and os.path.samefile(target, downloaded)):
        target.unlink(missing_ok=True)
        try:
            os.link(downloaded, target)  # one copy on disk: the cache and the pool share it
        except OSError:
            shutil.copyfile(downloaded, target)
    return BuiltPackage(
        family=family,
        name=entry.name,
        version=entry.evr,
        arch=entry.arch,
        path=path,
        sha256=got if entry.checksum_type == "sha256" else sha256_of(downloaded),
        size=downloaded.stat().st_size,
    )
