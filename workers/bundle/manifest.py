"""The bundle manifest: every OS package, file, image and chart an offline site needs, as data.

`bundle plan` writes it (JSON, one file), `bundle build` reads it and fetches what it lists, and the
repository host loads what the build fetched. Files name their upstream URL and where their sha256
comes from; the sha256 itself is read at build time from that source and written into the built
bundle's copy of the manifest (`BuiltFile`), which is what the repository host serves files by.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field

from kobot.deferred_models import DeferredModel

SHA256 = re.compile(r"[0-9a-f]{64}")
"""A sha256 as upstream checksum files write it: 64 lower-case hex digits."""

_PATH_CHARS = re.compile(r"[A-Za-z0-9._/-]+")
_COMPONENT_CHARS = re.compile(r"[A-Za-z0-9._+-]+")


def bundle_path(value: str) -> str:
    """A path inside the bundle folder: relative POSIX, of letters, digits and `._/-`, no `.`/`..` step.

    A manifest is a file someone hands kobot: a path like `../../etc/cron.d/x` would make the build
    write, and the repository host serve, outside the bundle."""
    parts = value.split("/")
    if (
        not _PATH_CHARS.fullmatch(value)
        or value.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise ValueError(
            f"bundle path {value!r} must be relative, of letters, digits and ._/- only, "
            "with no empty, '.' or '..' step (like kubernetes/v1.32.8/amd64/kubeadm)"
        )
    return value


def path_component(value: str) -> str:
    """One file or folder name inside the bundle (an image's layout, a chart's name or version)."""
    if not _COMPONENT_CHARS.fullmatch(value) or value in (".", ".."):
        raise ValueError(
            f"{value!r} must be one name of letters, digits and ._+- (not '.' or '..'), "
            "like registry.k8s.io_pause_3.10"
        )
    return value


_PACKAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+~^_-]*\.(?:deb|rpm)")


def package_path(value: str) -> str:
    """A .deb's or .rpm's place in the bundle: a `bundle_path` folder and a package file name (`+`, `~`
    and `^` are in Debian and rpm versions: `containerd_1.6.20~ds1-1+b1_amd64.deb`)."""
    folder, _, name = value.rpartition("/")
    if not folder or not _PACKAGE_NAME.fullmatch(name):
        raise ValueError(
            f"package path {value!r} must be a folder and a .deb or .rpm name of letters, digits and "
            ".+~^_- (like packages/pool/bookworm/kubeadm_1.32.8-1.1_amd64.deb or "
            "packages/el9/x86_64/Packages/chrony-4.5-3.el9.x86_64.rpm)"
        )
    bundle_path(folder)
    return value


BundlePath = Annotated[str, AfterValidator(bundle_path)]
"""A file's place under the bundle's folders, checked by `bundle_path`."""

PathComponent = Annotated[str, AfterValidator(path_component)]
"""One name in the bundle's folders, checked by `path_component`."""

PackagePath = Annotated[str, AfterValidator(package_path)]
"""A .deb's or .rpm's place under the bundle's `files/`, checked by `package_path`."""


class ChecksumKind(str, Enum):
    SHA256_FILE = "sha256-file"
    """A file beside the download holding its sha256 (dl.k8s.io's `kubeadm.sha256`)."""
    SUMS_FILE = "sums-file"
    """A release's list of `<sha256>  <name>` lines (etcd's SHA256SUMS); `entry` names the line."""
    UNPUBLISHED = "unpublished"
    """Upstream publishes no checksum: the build records what it fetched, and the plan says so."""


class ChecksumSource(DeferredModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ChecksumKind
    url: str = ""
    entry: str = ""
    """The file name to look up in a SUMS_FILE."""

    def describe(self) -> str:
        if self.kind is ChecksumKind.SHA256_FILE:
            return f"sha256 from {self.url}"
        if self.kind is ChecksumKind.SUMS_FILE:
            return f"sha256 from {self.url} ({self.entry})"
        return "upstream publishes no sha256: recorded at build"


class PlannedFile(DeferredModel):
    """One download, stored at `path` under the bundle's `files/` (the path the roles ask the file
    server for under `offline_files_url`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    arch: str | None
    path: BundlePath
    url: str
    checksum: ChecksumSource


class PlannedImage(DeferredModel):
    """An image as clusters name it (`registry.k8s.io/pause:3.10`) and why the bundle carries it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ref: str
    group: str
    """control-plane, cni, dns, addon:<name>."""


class PlannedChart(DeferredModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: PathComponent
    version: PathComponent
    repository: str
    """HTTP chart repository (`index.yaml` + archives); the index's digest is the chart's checksum."""
    addon: str


class PlannedPackage(DeferredModel):
    """An OS package the install roles take from the package mirror, pinned as the roles pin it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: str
    name: str
    version: str = ""
    """Empty: whatever the mirror carries (containerd, chrony); otherwise a pin like `1.32.8-*`."""
    repository: str
    """Where the package mirror gets it from (pkgs.k8s.io for the Kubernetes packages)."""


class PackageSource(DeferredModel):
    """An upstream repository a family's packages and their dependencies are resolved against.

    apt families: `suite` is a distribution's suite (`bookworm`, with `components`) or `/` for a flat
    repository (pkgs.k8s.io). EL families: `uri` is a dnf baseurl (`$releasever` and `$basearch` are
    filled in per build) and `suite` is empty. `keyring` is the file on the building machine holding the
    keys that sign the repository's index (apt) or its packages (rpm): the build refuses a source without
    one, never trusting an unsigned index or package."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: str
    uri: str
    suite: str
    components: tuple[str, ...] = ()
    arch: tuple[str, ...] = ()
    """The architectures this source serves (Ubuntu's ports archive); empty: all."""
    keyring: str = ""


class BundleManifest(DeferredModel):
    """What `bundle plan` writes and `bundle build` reads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kobot_bundle: int = 1
    """Format version of this file."""
    kubernetes_version: str
    os: tuple[str, ...]
    arch: tuple[str, ...]
    cni: str
    addons: tuple[str, ...]
    packages: tuple[PlannedPackage, ...]
    files: tuple[PlannedFile, ...]
    images: tuple[PlannedImage, ...]
    charts: tuple[PlannedChart, ...]
    package_sources: tuple[PackageSource, ...] = ()
    """Where `bundle build` resolves each family's packages (and their dependencies) from."""
    upstream: dict[str, str] = Field(default_factory=dict)
    """Prefix → replacement applied to every URL and image reference at build time: a site with its
    own upstream mirror (`https://dl.k8s.io=http://mirror/k8s`, `registry.k8s.io=http://mirror:5000`)."""

    def summary_lines(self) -> list[str]:
        """The human form: one line per item, grouped."""
        lines = [
            f"bundle for Kubernetes {self.kubernetes_version}: os {', '.join(self.os)}; "
            f"arch {', '.join(self.arch)}; cni {self.cni}; addons {', '.join(self.addons) or 'none'}",
            f"{len(self.packages)} OS packages, {len(self.files)} files, {len(self.images)} images, "
            f"{len(self.charts)} charts",
        ]
        for family in self.os:
            names = [
                f"{p.name}{'=' + p.version if p.version else ''}" for p in self.packages if p.family == family
            ]
            lines.append(f"packages ({family}): {' '.join(names)}")
            for source in (source for source in self.package_sources if source.family == family):
                keyring = source.keyring or "NO KEYRING: name one with --keyring URI_PREFIX=FILE"
                where = source.uri  # a dnf baseurl
                if source.suite:
                    where = f"{source.uri} {source.suite} {' '.join(source.components)}"
                lines.append(f"  from {where}  [{keyring}]")
        lines.append("files:")
        lines += [f"  {f.path}  <- {f.url}  [{f.checksum.describe()}]" for f in self.files]
        lines.append("images:")
        lines += [f"  {i.ref}  ({i.group})" for i in self.images]
        lines.append("charts:")
        lines += [f"  {c.name} {c.version} from {c.repository} ({c.addon})" for c in self.charts]
        return lines


class BuiltFile(DeferredModel):
    """A fetched file whose sha256 matched its source: what the file server serves by checksum."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: BundlePath
    sha256: str
    size: int
    verified_by: ChecksumKind


class BuiltImage(DeferredModel):
    """An image copied into an OCI layout under the bundle's `images/`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ref: str
    layout: PathComponent
    """Folder under `images/`, one OCI layout per image, tagged with the image's tag."""
    digest: str
    """The manifest (list) digest skopeo copied: content-addressed, so the copy is checked by it."""


class BuiltChart(DeferredModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: PathComponent
    version: PathComponent
    path: BundlePath
    sha256: str


class BuiltPackage(DeferredModel):
    """A .deb fetched into the bundle's apt repository, its sha256 checked against the upstream's signed
    index, or an .rpm fetched into one of its dnf repositories, its sha256 checked against the upstream's
    repodata and its signature against the upstream's keys; `path` is under `files/` (the repository
    host serves it with the files)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: str
    name: str
    version: str
    arch: str
    path: PackagePath
    sha256: str
    size: int


class BuiltBundle(DeferredModel):
    """`bundle.json` in a built bundle: the plan plus what was fetched and verified."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    manifest: BundleManifest
    files: tuple[BuiltFile, ...]
    images: tuple[BuiltImage, ...]
    charts: tuple[BuiltChart, ...]
    packages: tuple[BuiltPackage, ...] = ()
