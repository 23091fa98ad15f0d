"""`bundle build`: fetch everything a manifest lists into a folder, verifying every checksum.

Layout of a built bundle (what the repository host loads):
    bundle.json           the manifest plus what was fetched: each file's sha256, each image's digest
    files/<path>          every file at the path the roles ask `offline_files_url` for
    files/sha256/<hex>    a relative link to each file: what a client fetches by checksum
    files/packages/       the apt repository of the Debian/Ubuntu families' packages and their dependencies,
                          signed by kobot's repository key (workers.bundle.apt_repository), and one dnf
                          repository per EL release and architecture, its repomd.xml signed by that key
                          (workers.bundle.rpm_repository)
    packages-cache/       apt's and dnf's downloads, what a second build resumes from (not served)
    images/<layout>/      one OCI layout per image (skopeo), `images/<layout>.json` once it is complete
    charts/<name>-<version>.tgz
Resumable: run it again after an interruption and verified files and complete images are kept, a
partial download continues where it stopped.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml

from kobot.errors import KobotError, StepFailedError
from workers.addons.catalog import AddonInputs, entry_named
from workers.addons.chart_repository import fetch_chart
from workers.addons.helm_render import render_chart
from workers.addons.manifests import Manifest, ObjectRef, image_fields
from workers.bundle import defaults, rpm_packages
from workers.bundle.apt_packages import PACKAGES_DIR, fetch_apt_family
from workers.bundle.apt_repository import PUBLIC_KEY, write_apt_repository
from workers.bundle.apt_signing import RepositorySigner
from workers.bundle.fetch import fetch_file, rewritten, sha256_of
from workers.bundle.images import copy_to_layout, write_policy
from workers.bundle.manifest import (
    BuiltBundle,
    BuiltChart,
    BuiltFile,
    BuiltImage,
    BuiltPackage,
    BundleManifest,
    ChecksumKind,
    PlannedChart,
)
from workers.bundle.plan import APT_SUITES, DNF_RELEASES, RPM_ARCHES, qualified_image
from workers.bundle.rpm_repository import write_rpm_repositories

log = logging.getLogger(__name__)

BUNDLE_FILE = "bundle.json"

BY_CHECKSUM = "sha256"
"""Folder under `files/` holding one link per file, named by its sha256."""

RENDER_WEBHOOK = "http://kobot.invalid/alerts"
"""Placeholder wiring for renders that only list images (with a throwaway token): nothing is installed
from them."""

Progress = Callable[[str], None]


def build_bundle(
    manifest: BundleManifest,
    *,
    into: Path,
    tarball: bool = False,
    progress: Progress = log.info,
    signer: RepositorySigner | None = None,
) -> BuiltBundle:
    """Fetch and verify everything `manifest` lists into `into`; write `bundle.json` (and the tarball).

    `signer` signs the package repositories (apt's Release files, dnf's repomd.xml); a manifest listing
    OS packages is refused without it."""
    into.mkdir(parents=True, exist_ok=True)
    packages, keys = _packages(manifest, into=into, progress=progress, signer=signer)
    upstream = manifest.upstream
    files = [_key_file(into / "files", path=path) for path in keys]
    timeout = httpx.Timeout(defaults.FETCH_TIMEOUT_SECONDS)
    with httpx.Client(timeout=timeout, follow_redirects=True) as http:
        for planned in manifest.files:
            sha256, size, how = fetch_file(
                http, planned, target=into / "files" / planned.path, upstream=upstream
            )
            files.append(BuiltFile(path=planned.path, sha256=sha256, size=size, verified_by=how))
            _link_by_checksum(into / "files", path=planned.path, sha256=sha256)
            progress(f"file {planned.path} sha256 {sha256} ({how.value})")
    charts: list[BuiltChart] = []
    refs = [image.ref for image in manifest.images]
    for chart in manifest.charts:
        built_chart, rendered = _chart(chart, into=into / "charts", upstream=upstream)
        charts.append(built_chart)
        progress(f"chart {chart.name} {chart.version} sha256 {built_chart.sha256}")
        for named in rendered:
            if named not in refs:
                progress(f"image {named}: named by the {chart.name} render, added")
                refs.append(named)
    policy = write_policy(into / "skopeo-policy.json")
    images: list[BuiltImage] = []
    for ref in refs:
        image = copy_to_layout(ref, images_dir=into / "images", upstream=upstream, policy=policy)
        images.append(image)
        progress(f"image {ref} {image.digest}")
    built = BuiltBundle(
        manifest=manifest,
        files=tuple(files),
        images=tuple(images),
        charts=tuple(charts),
        packages=tuple(packages),
    )
    (into / BUNDLE_FILE).write_text(built.model_dump_json(indent=2))
    if tarball:
        write_tarball(into, target=into.parent / defaults.TARBALL_NAME)
    return built


def read_built(into: Path) -> BuiltBundle:
    path = into / BUNDLE_FILE
    if not path.is_file():
        raise StepFailedError(f"{into} holds no {BUNDLE_FILE}: build the bundle first (`kobot bundle build`)")
    return BuiltBundle.model_validate_json(path.read_text())


def verify_built(into: Path) -> BuiltBundle:
    """The built bundle, after checking every file against the sha256 its build recorded and that its
    EL repositories hold nothing the build did not record."""
    built = read_built(into)
    for item in built.files:
        path = into / "files" / item.path
        if not path.is_file() or sha256_of(path) != item.sha256:
            raise StepFailedError(
                f"{item.path} in {into} is missing or changed since the build", task="verify"
            )
    for package in built.packages:
        path = into / "files" / package.path
        if not path.is_file() or sha256_of(path) != package.sha256:
            raise StepFailedError(
                f"{package.path} in {into} is missing or changed since the build", task="verify"
            )
    unlisted = _unlisted_rpm_repository_files(into, built)
    if unlisted:
        raise StepFailedError(
            f"{unlisted[0]} in {into} is no part of the build ({len(unlisted)} such files): a repository "
            "host would serve it; build the bundle again",
            task="verify",
        )
    return built


def write_tarball(into: Path, *, target: Path) -> Path:
    with tarfile.open(target, "w") as tar:
        tar.add(into, arcname=into.name)
    return target


def apt_families(manifest: BundleManifest) -> list[str]:
    """The families whose packages the build fetches into the signed apt repository."""
    listed = {package.family for package in manifest.packages}
    return [family for family in manifest.os if family in listed and family in APT_SUITES]


def el_families(manifest: BundleManifest) -> list[str]:
    """The families whose packages the build fetches into signed dnf repositories."""
    listed = {package.family for package in manifest.packages}
    return [family for family in manifest.os if family in listed and family in DNF_RELEASES]


def _packages(
    manifest: BundleManifest, *, into: Path, progress: Progress, signer: RepositorySigner | None
) -> tuple[list[BuiltPackage], list[str]]:
    """Every family's packages with their dependencies, in signed apt and dnf repositories; the packages,
    and the paths under `files/` of the keys the nodes are given (kobot's, the EL upstreams')."""
    apt = apt_families(manifest)
    el = el_families(manifest)
    root = into / "files" / PACKAGES_DIR
    _remove_other_plans_rpm_repositories(root, el=el, arches=[RPM_ARCHES[a] for a in manifest.arch])
    if not apt and not el:
        return [], []
    if signer is None:
        raise StepFailedError(
            "the bundle's package repositories are signed with kobot's repository key, and this build was "
            "given none: build with `kobot bundle build`, which takes it from kobot's store",
            task="packages",
        )
    packages: list[BuiltPackage] = []
    for family in apt:
        packages += fetch_apt_family(
            manifest, family=family, suite=APT_SUITES[family], into=into, progress=progress
        )
    if apt:
        write_apt_repository(root, suites={APT_SUITES[f]: manifest.arch for f in apt}, signer=signer)
        progress(
            f"apt repository files/{PACKAGES_DIR}: {len(packages)} packages, signed by kobot's repository key"
        )
    keys: list[str] = []
    repositories: list[Path] = []
    for family in el:
        fetched, upstream_keys = rpm_packages.fetch_el_family(
            manifest, family=family, release=DNF_RELEASES[family], into=into, progress=progress
        )
        packages += fetched
        key_dir = root / family / rpm_packages.KEYS_DIR
        shutil.rmtree(key_dir, ignore_errors=True)  # the keys of this plan's sources, no other
        key_dir.mkdir(parents=True)
        for fingerprint, key in sorted(upstream_keys.items()):
            (key_dir / f"{fingerprint}.asc").write_bytes(key)
            keys.append(f"{PACKAGES_DIR}/{family}/{rpm_packages.KEYS_DIR}/{fingerprint}.asc")
        repositories += [root / family / RPM_ARCHES[arch] for arch in manifest.arch]
    if repositories:
        (root / PUBLIC_KEY).write_bytes(write_rpm_repositories(repositories, signer=signer))
        progress(f"dnf repositories files/{PACKAGES_DIR}/{'|'.join(el)}: signed by kobot's repository key")
    return packages, [f"{PACKAGES_DIR}/{PUBLIC_KEY}", *keys]


def _remove_other_plans_rpm_repositories(root: Path, *, el: list[str], arches: list[str]) -> None:
    """A bundle folder is built again with another plan: an EL release or architecture this plan does
    not name would stay served, signed by an earlier build, so it goes before anything is written."""
    if not root.is_dir():
        return
    for family in sorted(root.iterdir()):
        if family.name not in DNF_RELEASES or not family.is_dir():
            continue
        if family.name not in el:
            shutil.rmtree(family)
            continue
        for arch in sorted(family.iterdir()):
            if arch.name in (*arches, rpm_packages.KEYS_DIR):
                continue
            if arch.is_dir():
                shutil.rmtree(arch)
            else:
                arch.unlink()


def _unlisted_rpm_repository_files(into: Path, built: BuiltBundle) -> list[str]:
    """Paths under `files/` of the EL repositories that the build did not record: an rpm no package
    names, repodata of a repository that holds none of the recorded packages, a key that is no file."""
    root = into / "files" / PACKAGES_DIR
    listed = {package.path for package in built.packages} | {item.path for item in built.files}
    repositories = {str(Path(path).parent.parent) for path in listed if path.endswith(".rpm")}
    unlisted: list[str] = []
    for family in sorted(DNF_RELEASES):
        for file in sorted((root / family).rglob("*")):
            path = file.relative_to(into / "files").as_posix()
            if file.is_dir():
                continue
            in_repodata = file.parent.name == "repodata" and str(Path(path).parent.parent) in repositories
            if path not in listed and not in_repodata:
                unlisted.append(path)
    return unlisted


def _key_file(files: Path, *, path: str) -> BuiltFile:
    """A key the nodes are given as one of the bundle's files: its sha256 reaches the clusters with the
    others' (`offline_file_sha256`), so base_os checks each key it fetches before trusting it."""
    key = files / path
    sha256 = sha256_of(key)
    _link_by_checksum(files, path=path, sha256=sha256)
    return BuiltFile(path=path, sha256=sha256, size=key.stat().st_size, verified_by=ChecksumKind.UNPUBLISHED)


def _link_by_checksum(files: Path, *, path: str, sha256: str) -> None:
    link = files / BY_CHECKSUM / sha256
    link.parent.mkdir(parents=True, exist_ok=True)
    target = Path("..") / path
    if link.is_symlink() and link.readlink() == target:
        return
    link.unlink(missing_ok=True)
    link.symlink_to(target)


def _chart(chart: PlannedChart, *, into: Path, upstream: dict[str, str]) -> tuple[BuiltChart, list[str]]:
    """Fetch the chart (its digest checked against the repository's index) and the images its render
    names, as a registry mirror stores them."""
    archive = fetch_chart(
        repository=rewritten(chart.repository, upstream), name=chart.name, version=chart.version, into=into
    )
    entry = entry_named(chart.addon)
    inputs = AddonInputs(
        cluster="bundle", user_values={}, webhook_url=RENDER_WEBHOOK, webhook_token=secrets.token_hex(16)
    )
    try:
        values = entry.values(inputs)
    except (KobotError, KeyError):
        values = {}  # an addon that needs a person's values (an NFS server, say): the chart's defaults
    rendered = render_chart(archive=archive, values=values, release=entry.release, namespace=entry.namespace)
    manifests: list[Manifest] = []
    for path, text in sorted(rendered.manifests.items()):
        if path.endswith(".txt"):
            continue
        for body in yaml.safe_load_all(text):
            if isinstance(body, dict) and body.get("kind"):
                name = str((body.get("metadata") or {}).get("name", ""))
                ref = ObjectRef(
                    api_version=str(body.get("apiVersion")), kind=str(body["kind"]), plural="", name=name
                )
                manifests.append(Manifest(ref=ref, body=body))
    images = [qualified_image(image) for image in image_fields(manifests)]
    built = BuiltChart(
        name=chart.name, version=chart.version, path=f"charts/{archive.name}", sha256=sha256_of(archive)
    )
    return built, images
