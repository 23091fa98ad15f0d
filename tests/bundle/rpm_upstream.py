"""A local upstream of dnf repositories for the bundle's EL package tests, as the el9 plan names them:
Rocky's BaseOS and AppStream, Docker's repository (one repository per architecture each) and
pkgs.k8s.io's rpm repository (one for every architecture), with real tiny rpms built by `rpmbuild`,
signed by a throwaway test key (`rpmsign`), indexed by `createrepo_c` and served over loopback by the
files peer (ranges, faults, a request log).

BaseOS holds a dependency chain (chrony Requires `libtiny++ >= 2`, and libtiny++ Requires the noarch
`kobot-tzdata`; a `+` in a file name, as libstdc++ has) beside packages nothing needs (libtiny++ 1.0,
unwanted); Docker's containerd.io Requires
AppStream's container-selinux; the Kubernetes repository holds two patch releases, so the pin decides.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.bundle.upstream import UpstreamFilesPeer
from workers.bundle.apt_signing import gnupg_home
from workers.bundle.manifest import BuiltBundle, BundleManifest
from workers.bundle.plan import RPM_ARCHES as ARCHES
from workers.bundle.plan import plan_bundle

RPM_PREFIX = "/rpm"
"""Path under the files peer where the upstream hosts live (`/rpm/dl.rockylinux.org/pub/...`)."""
KUBE_VERSION = "1.32.8"
TOOL_TIMEOUT_SECONDS = 60.0
"""Upper bound of one rpmbuild, rpmsign, createrepo_c or gpg call."""
SIGNER = "kobot tests rpm upstream <rpm-upstream@kobot.invalid>"

BASEOS = "dl.rockylinux.org/pub/rocky/9/BaseOS/{arch}/os"
APPSTREAM = "dl.rockylinux.org/pub/rocky/9/AppStream/{arch}/os"
DOCKER = "download.docker.com/linux/centos/9/{arch}/stable"
KUBERNETES = "pkgs.k8s.io/core:/stable:/v1.32/rpm"

PACKAGES: tuple[tuple[str, str, str, str, bool, str], ...] = (
    # (repository, name, version, release, noarch, Requires)
    (BASEOS, "chrony", "4.5", "3.el9", False, "libtiny++ >= 2"),
    (BASEOS, "libtiny++", "1.0", "1.el9", False, ""),
    (BASEOS, "libtiny++", "2.0", "1.el9", False, "kobot-tzdata"),
    (BASEOS, "kobot-tzdata", "2024a", "1.el9", True, ""),
    (BASEOS, "ipvsadm", "1.31", "6.el9", False, ""),
    (BASEOS, "unwanted", "1.0", "1.el9", False, ""),
    (BASEOS, "kobot-ja", "1.0", "1.el9", False, "kobot-cap"),
    (BASEOS, "kobot-jb", "1.0", "1.el9", False, ""),
    (BASEOS, "kobot-p1", "1.0", "1.el9", False, ""),
    (BASEOS, "kobot-p2", "1.0", "1.el9", False, ""),
    (BASEOS, "kobot-recommended", "1.0", "1.el9", False, ""),
    (APPSTREAM, "haproxy", "2.8.3", "1.el9", False, ""),
    (APPSTREAM, "keepalived", "2.2.8", "3.el9", False, ""),
    (APPSTREAM, "container-selinux", "2.229.0", "1.el9", True, ""),
    (DOCKER, "containerd.io", "1.7.25", "3.1.el9", False, "container-selinux"),
    (KUBERNETES, "kubelet", "1.32.7", "150500.1.1", False, ""),
    (KUBERNETES, "kubelet", "1.32.8", "150500.1.1", False, ""),
    (KUBERNETES, "kubeadm", "1.32.7", "150500.1.1", False, "kubelet, cri-tools >= 1.30.0"),
    (KUBERNETES, "kubeadm", "1.32.8", "150500.1.1", False, "kubelet, cri-tools >= 1.30.0"),
    (KUBERNETES, "kubectl", "1.32.8", "150500.1.1", False, ""),
    (KUBERNETES, "cri-tools", "1.32.0", "150500.1.1", False, ""),
)
"""The upstream as the tests shape it."""

HEADERS = {
    "kobot-ja": "Recommends: kobot-recommended\n",
    "kobot-jb": "Conflicts: kobot-p1\n",
    "kobot-p1": "Provides: kobot-cap\n",
    "kobot-p2": "Provides: kobot-cap\n",
}
"""More spec header lines of some packages: `kobot-ja` needs `kobot-cap`, which p1 and p2 both provide,
and `kobot-jb` conflicts with p1, so only p2 lets ja and jb install together (no plan names them: a test
adds them); ja recommends a package a bundle leaves out, as it leaves out apt's Recommends."""

CLOSURE_NAMES = (
    "chrony-4.5-3.el9",
    "container-selinux-2.229.0-1.el9",
    "containerd.io-1.7.25-3.1.el9",
    "cri-tools-1.32.0-150500.1.1",
    "haproxy-2.8.3-1.el9",
    "ipvsadm-1.31-6.el9",
    "keepalived-2.2.8-3.el9",
    "kobot-tzdata-2024a-1.el9",
    "kubeadm-1.32.8-150500.1.1",
    "kubectl-1.32.8-150500.1.1",
    "kubelet-1.32.8-150500.1.1",
    "libtiny++-2.0-1.el9",
)
"""name-version-release of exactly what installing the el9 plan's packages on a bare node takes."""


def closure(arch: str) -> list[str]:
    """The closure's file names for one rpm architecture."""
    noarch = {f"{name}-{version}-{release}" for _, name, version, release, flat, _ in PACKAGES if flat}
    return sorted(f"{nvr}.{'noarch' if nvr in noarch else arch}.rpm" for nvr in CLOSURE_NAMES)


@dataclass(frozen=True)
class RpmUpstream:
    peer: UpstreamFilesPeer
    root: Path
    key: Path
    """The armored public key every upstream package is signed with."""
    manifest: BundleManifest
    """An el9 amd64+arm64 plan pointed at the peer: packages only (no files, images or charts)."""

    def rpm_path(self, name: str) -> str:
        """The peer path an rpm of the closure is served at (the first, for a noarch one)."""
        for path in sorted(self.peer.files):
            if path.endswith(f"/{name}"):
                return path
        raise KeyError(name)

    def rpm_requests(self) -> list[str]:
        return [r.path for r in self.peer.requests.where(lambda r: r.path.endswith(".rpm"))]


@dataclass(frozen=True)
class BuiltRpmBundle:
    """One build of the upstream's el9 plan for both architectures (the session's; tests that change a
    bundle copy it)."""

    folder: Path
    bundle: BuiltBundle
    fetched: list[str]
    """The rpm paths the build asked the upstream for."""


def _run(argv: list[str], *, env: dict[str, str] | None = None) -> bytes:
    return subprocess.run(argv, env=env, capture_output=True, timeout=TOOL_TIMEOUT_SECONDS, check=True).stdout


def _spec(packages: list[tuple[str, str, str, str, bool, str]]) -> str:
    """One spec whose subpackages are `packages` (each its own version), each holding one marker file."""
    text = "Name: kobot-upstream\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\n%description\nd\n"
    install = "%install\nmkdir -p %{buildroot}/usr/share/kobot-tests\n"
    files = ""
    for _, name, version, release, noarch, requires in packages:
        text += f"%package -n {name}\nVersion: {version}\nRelease: {release}\nSummary: {name}\n"
        text += "BuildArch: noarch\n" if noarch else ""
        text += f"Requires: {requires}\n" if requires else ""
        text += HEADERS.get(name, "")
        text += f"%description -n {name}\n{name} as the tests' upstream carries it\n"
        install += f"echo '{name} {version}' > %{{buildroot}}/usr/share/kobot-tests/{name}\n"
        files += f"%files -n {name}\n/usr/share/kobot-tests/{name}\n"
    return text + install + files


def build_rpm_upstream(root: Path, *, gnupg: Path) -> dict[tuple[str, str, str, str], Path]:
    """Every package built for every architecture (noarch once), signed with the key in `gnupg`;
    (repository, name, version-release, arch) → the rpm."""
    groups: list[list[tuple[str, str, str, str, bool, str]]] = []
    for package in PACKAGES:  # one spec cannot hold two versions of a name
        group = next((g for g in groups if all(p[1] != package[1] for p in g)), None)
        if group is None:
            groups.append(group := [])
        group.append(package)
    built: dict[tuple[str, str, str, str], Path] = {}
    for number, group in enumerate(groups):
        spec = root / f"upstream-{number}.spec"
        spec.write_text(_spec(group))
        for arch in ARCHES.values():
            top = root / "rpmbuild" / f"{number}-{arch}"
            macros = ["--define", f"_topdir {top}", "--define", "_build_id_links none"]
            _run(["rpmbuild", "--quiet", *macros, "--target", arch, "-bb", str(spec)])
            for repository, name, version, release, noarch, _ in group:
                rpm_arch = "noarch" if noarch else arch
                built.setdefault(
                    (repository, name, f"{version}-{release}", rpm_arch),
                    top / "RPMS" / rpm_arch / f"{name}-{version}-{release}.{rpm_arch}.rpm",
                )
    sign_rpms(list(built.values()), gnupg=gnupg)
    return built


def sign_rpms(rpms: list[Path], *, gnupg: Path) -> None:
    env = {"GNUPGHOME": str(gnupg), "PATH": "/usr/bin:/bin", "HOME": str(gnupg)}
    _run(
        [
            "rpmsign",
            "--define",
            "__gpg /usr/bin/gpg",
            "--define",
            f"_gpg_name {SIGNER}",
            "--define",
            "_gpg_sign_cmd_extra_args --batch --pinentry-mode loopback --passphrase ''",
            "--addsign",
            *(str(rpm) for rpm in rpms),
        ],
        env=env,
    )


def write_repositories(root: Path, built: dict[tuple[str, str, str, str], Path]) -> None:
    """The upstream tree under `root`: each repository's Packages/ and repodata/ (createrepo_c)."""
    folders: set[Path] = set()
    for (repository, _name, _vr, arch), rpm in built.items():
        arches = list(ARCHES.values()) if arch == "noarch" else [arch]
        for each in arches:
            folder = root / repository.format(arch=each)
            (folder / "Packages").mkdir(parents=True, exist_ok=True)
            target = folder / "Packages" / rpm.name
            if not target.exists():
                target.write_bytes(rpm.read_bytes())
            folders.add(folder)
    for folder in sorted(folders):
        _run(["createrepo_c", "--quiet", "--no-database", str(folder)])


EL8_PATHS = {"/rocky/9/": "/rocky/8/", "/centos/9/": "/centos/8/"}
"""Where the el9 plan's Rocky and Docker repositories live for an el8 plan: the upstream serves the same
repositories there too (their rpms say el9, what an el8 build shows is its layout and `$releasever`)."""


def serve_tree(peer: UpstreamFilesPeer, root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.endswith(".spec"):
            served = f"{RPM_PREFIX}/{path.relative_to(root).as_posix()}"
            peer.files[served] = body = path.read_bytes()
            for el9, el8 in EL8_PATHS.items():
                if el9 in served:
                    peer.files[served.replace(el9, el8, 1)] = body


def el_manifest(*, origin: str, key: Path, family: str = "el9") -> BundleManifest:
    """The `family` plan for `KUBE_VERSION` on both architectures, its sources rewritten to the peer and
    verified by the test key; packages only."""
    hosts = ("https://dl.rockylinux.org", "https://download.docker.com", "https://pkgs.k8s.io")
    planned = plan_bundle(
        version=KUBE_VERSION,
        os=[family],
        arch=list(ARCHES),
        cni="flannel",
        upstream={host: f"{origin}{RPM_PREFIX}/{host.split('://', 1)[1]}" for host in hosts},
        keyrings={host: str(key) for host in hosts},
    )
    return planned.model_copy(update={"files": (), "images": (), "charts": ()})


@contextmanager
def running_rpm_upstream(work: Path) -> Iterator[RpmUpstream]:
    root = work / "upstream"
    key = work / "upstream-key.asc"
    with gnupg_home() as gnupg:
        env = {"GNUPGHOME": str(gnupg), "PATH": "/usr/bin:/bin"}
        _run(
            ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", SIGNER, "ed25519", "sign", "1d"],
            env=env,
        )
        key.write_bytes(_run(["gpg", "--batch", "--armor", "--export", SIGNER], env=env))
        built = build_rpm_upstream(work, gnupg=gnupg)
    write_repositories(root, built)
    with UpstreamFilesPeer().running() as peer:
        serve_tree(peer, root)
        yield RpmUpstream(peer=peer, root=root, key=key, manifest=el_manifest(origin=peer.origin, key=key))
