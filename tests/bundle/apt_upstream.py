"""A local upstream of apt repositories for the bundle's package tests, as the debian12 plan names them:
Debian's archive (`bookworm`, `bookworm-updates`, `bookworm-security`) and pkgs.k8s.io's flat
repository, each signed by a throwaway test key, with real tiny .debs built by `dpkg-deb` and indexed
by `apt-ftparchive`, served over loopback by the files peer (ranges, faults, a request log).

The Debian archive holds a dependency chain (chrony Depends `libtiny (>= 2) | libother`, and libtiny
Depends the arch-all `kobot-tzdata`) beside packages nothing needs (libtiny 1, libother, unwanted); the
Kubernetes repository holds two patch releases, so the pin decides.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.bundle.upstream import UpstreamFilesPeer
from workers.bundle.apt_signing import gnupg_home
from workers.bundle.manifest import BundleManifest
from workers.bundle.plan import plan_bundle

APT_PREFIX = "/apt"
"""Path under the files peer where the upstream hosts live (`/apt/deb.debian.org/debian/...`)."""
ARCH = "amd64"
KUBE_VERSION = "1.32.8"
TOOL_TIMEOUT_SECONDS = 60.0
"""Upper bound of one dpkg-deb, apt-ftparchive or gpg call."""

DEBIAN: tuple[tuple[str, str, str, str], ...] = (
    # (package, version, architecture, Depends)
    ("containerd", "1.6.20~ds1-1+b1", ARCH, ""),
    ("chrony", "4.3-2+deb12u1", ARCH, "libtiny (>= 2) | libother"),
    ("libtiny", "1.0-1", ARCH, ""),
    ("libtiny", "2.0-1", ARCH, "kobot-tzdata"),
    ("libother", "1.0-1", ARCH, ""),
    ("kobot-tzdata", "2024a-1", "all", ""),
    ("ipvsadm", "1:1.31-1+b2", ARCH, ""),
    ("haproxy", "2.6.12-1+deb12u1", ARCH, ""),
    ("keepalived", "1:2.2.7-1+b2", ARCH, ""),
    ("unwanted", "1.0-1", ARCH, ""),
)
"""Debian's archive (bookworm main) as the tests shape it."""

KUBERNETES: tuple[tuple[str, str, str, str], ...] = (
    ("kubelet", "1.32.7-1.1", ARCH, ""),
    ("kubelet", "1.32.8-1.1", ARCH, ""),
    ("kubeadm", "1.32.7-1.1", ARCH, "kubelet (>= 1.32.0), cri-tools (>= 1.30.0)"),
    ("kubeadm", "1.32.8-1.1", ARCH, "kubelet (>= 1.32.0), cri-tools (>= 1.30.0)"),
    ("kubectl", "1.32.8-1.1", ARCH, ""),
    ("cri-tools", "1.32.0-1.1", ARCH, ""),
)
"""pkgs.k8s.io's v1.32 repository as the tests shape it."""

CLOSURE = (
    "chrony_4.3-2+deb12u1_amd64.deb",
    "containerd_1.6.20~ds1-1+b1_amd64.deb",
    "cri-tools_1.32.0-1.1_amd64.deb",
    "haproxy_2.6.12-1+deb12u1_amd64.deb",
    "ipvsadm_1.31-1+b2_amd64.deb",
    "keepalived_2.2.7-1+b2_amd64.deb",
    "kobot-tzdata_2024a-1_all.deb",
    "kubeadm_1.32.8-1.1_amd64.deb",
    "kubectl_1.32.8-1.1_amd64.deb",
    "kubelet_1.32.8-1.1_amd64.deb",
    "libtiny_2.0-1_amd64.deb",
)
"""Exactly what installing the debian12 plan's packages on a bare node takes from this upstream."""


@dataclass(frozen=True)
class AptUpstream:
    peer: UpstreamFilesPeer
    root: Path
    keyring: Path
    """The binary keyring that verifies every upstream index."""
    manifest: BundleManifest
    """A debian12 amd64 plan pointed at the peer: packages only (no files, images or charts)."""

    @property
    def lean_manifest(self) -> BundleManifest:
        """`manifest` without the empty `-updates`/`-security` suites: apt verifies each source's
        signature in turn (~0.5 s each), and the tests that build again need only the two that hold
        packages."""
        sources = tuple(s for s in self.manifest.package_sources if "-" not in s.suite)
        return self.manifest.model_copy(update={"package_sources": sources})

    def deb_path(self, name: str) -> str:
        """The peer path a .deb of `CLOSURE` is served at."""
        for path in self.peer.files:
            if path.endswith(f"/{name}"):
                return path
        raise KeyError(name)

    @contextmanager
    def served_instead(self, path: str, body: bytes) -> Iterator[None]:
        """Serve `body` at `path` for the block (the upstream is shared by the session's tests)."""
        original = self.peer.files[path]
        self.peer.files[path] = body
        try:
            yield
        finally:
            self.peer.files[path] = original


def _run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> bytes:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, timeout=TOOL_TIMEOUT_SECONDS, check=True
    ).stdout


def _deb(folder: Path, build: Path, *, package: str, version: str, arch: str, depends: str) -> None:
    tree = build / f"{package}-{version}-{arch}"
    (tree / "DEBIAN").mkdir(parents=True)
    marker = tree / "usr" / "share" / "kobot-tests" / package
    marker.parent.mkdir(parents=True)
    marker.write_text(f"{package} {version}\n")
    control = (
        f"Package: {package}\nVersion: {version}\nArchitecture: {arch}\n"
        "Maintainer: kobot tests <tests@kobot.invalid>\n"
        f"Description: {package} as the tests' upstream carries it\n"
    )
    if depends:
        control += f"Depends: {depends}\n"
    (tree / "DEBIAN" / "control").write_text(control)
    folder.mkdir(parents=True, exist_ok=True)
    upstream_version = version.split(":", 1)[-1]
    _run(
        [
            "dpkg-deb",
            "--root-owner-group",
            "--build",
            str(tree),
            str(folder / f"{package}_{upstream_version}_{arch}.deb"),
        ]
    )


def _release(dist: Path, cwd: Path, target: str, *, suite: str) -> None:
    options = [
        "-oAPT::FTPArchive::Release::Origin=kobot-tests",
        f"-oAPT::FTPArchive::Release::Suite={suite}",
        f"-oAPT::FTPArchive::Release::Codename={suite}",
        f"-oAPT::FTPArchive::Release::Architectures={ARCH}",
    ]
    if suite != "/":
        options.append("-oAPT::FTPArchive::Release::Components=main")
    (dist / "Release").write_bytes(_run(["apt-ftparchive", *options, "release", target], cwd=cwd))


def _suite(archive: Path, suite: str, debs: list[tuple[str, str, str, str]], build: Path) -> None:
    pool = f"pool/{suite}"
    for package, version, arch, depends in debs:
        _deb(archive / pool, build, package=package, version=version, arch=arch, depends=depends)
    binary = archive / "dists" / suite / "main" / f"binary-{ARCH}"
    binary.mkdir(parents=True)
    index = _run(["apt-ftparchive", "packages", pool], cwd=archive) if debs else b""
    (binary / "Packages").write_bytes(index)
    _release(archive / "dists" / suite, archive, f"dists/{suite}", suite=suite)


def sign_releases(root: Path, *, keyring: Path | None = None) -> Path:
    """Clear-sign every Release under `root` with a new throwaway key; its binary keyring (written to
    `keyring`, or `root/../upstream-keyring.gpg`)."""
    target = keyring or root.parent / "upstream-keyring.gpg"
    with gnupg_home() as home:
        env = {"GNUPGHOME": str(home), "PATH": "/usr/bin:/bin"}
        uid = "kobot tests upstream <upstream@kobot.invalid>"
        _run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "1d"], env=env)
        target.write_bytes(_run(["gpg", "--batch", "--export", uid], env=env))
        for release in root.rglob("Release"):
            (release.parent / "InRelease").unlink(missing_ok=True)
            _run(
                [
                    "gpg",
                    "--batch",
                    "--clearsign",
                    "--output",
                    str(release.parent / "InRelease"),
                    str(release),
                ],
                env=env,
            )
    return target


def build_apt_upstream(root: Path) -> Path:
    """The upstream tree under `root` (`deb.debian.org/...`, `pkgs.k8s.io/...`); the keyring."""
    build = root.parent / "deb-build"
    debian = root / "deb.debian.org" / "debian"
    _suite(debian, "bookworm", list(DEBIAN), build)
    _suite(debian, "bookworm-updates", [], build)
    _suite(root / "deb.debian.org" / "debian-security", "bookworm-security", [], build)
    flat = root / "pkgs.k8s.io" / "core:" / "stable:" / "v1.32" / "deb"
    for package, version, arch, depends in KUBERNETES:
        _deb(flat / ARCH, build, package=package, version=version, arch=arch, depends=depends)
    (flat / "Packages").write_bytes(_run(["apt-ftparchive", "packages", ARCH], cwd=flat))
    _release(flat, flat, ".", suite="/")
    return sign_releases(root)


def serve_tree(peer: UpstreamFilesPeer, root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            peer.files[f"{APT_PREFIX}/{path.relative_to(root).as_posix()}"] = path.read_bytes()


def packages_manifest(*, origin: str, keyring: Path) -> BundleManifest:
    """The debian12 plan for `KUBE_VERSION`, its sources rewritten to the peer and verified by the
    test keyring; packages only."""
    planned = plan_bundle(
        version=KUBE_VERSION,
        os=["debian12"],
        arch=[ARCH],
        cni="flannel",
        upstream={
            "http://deb.debian.org": f"{origin}{APT_PREFIX}/deb.debian.org",
            "https://pkgs.k8s.io": f"{origin}{APT_PREFIX}/pkgs.k8s.io",
        },
        keyrings={"http://deb.debian.org": str(keyring), "https://pkgs.k8s.io": str(keyring)},
    )
    return planned.model_copy(update={"files": (), "images": (), "charts": ()})


@contextmanager
def running_apt_upstream(work: Path) -> Iterator[AptUpstream]:
    root = work / "upstream"
    keyring = build_apt_upstream(root)
    with UpstreamFilesPeer().running() as peer:
        serve_tree(peer, root)
        yield AptUpstream(
            peer=peer,
            root=root,
            keyring=keyring,
            manifest=packages_manifest(origin=peer.origin, keyring=keyring),
        )
