"""An offline repository made by the tests, laid out as the install roles expect it, on each test host.

apt: real .deb packages (kubelet, kubeadm, kubectl, cri-tools; each a small script, built by
`dpkg-deb`), a `Packages` index, a `Release` with their SHA256 and an `InRelease` clear-signed by a
throwaway GnuPG key whose public half is `gpg.key` (what base_os installs for `signed-by`). files:
etcd's release archive layout with a `SHA256SUMS` beside it. The test hosts reach nothing beyond
their lab, so the tree is copied into each host and named by `file://` URLs.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.hosts.lab import LabHost

LOCAL_REPOSITORY_ROOT = "/srv/kobot-offline"
"""Where the tree lands on every test host."""
SUITE = "bookworm"
"""The test hosts' release: base_os names `ansible_distribution_release` as the suite."""
ARCH = "amd64"
ETCD_VERSION = "3.5.16"
"""etcd_tools_version of the kube_packages role."""
TOOL_TIMEOUT_SECONDS = 60.0
"""Upper bound of one dpkg-deb, gpg or copy call."""


@dataclass(frozen=True)
class LocalRepository:
    """The built tree and what the inventory names it by on a test host."""

    root: Path
    kube_packages: tuple[tuple[str, str], ...]
    """(package, Debian version) of every package in the apt index."""

    @property
    def apt_url(self) -> str:
        return f"file://{LOCAL_REPOSITORY_ROOT}/apt"

    @property
    def files_url(self) -> str:
        return f"file://{LOCAL_REPOSITORY_ROOT}/files"

    def copy_to(self, host: LabHost) -> None:
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            tar.add(self.root, arcname=".")
        subprocess.run(
            [*host.ssh_args(), f"mkdir -p {LOCAL_REPOSITORY_ROOT} && tar -xzf - -C {LOCAL_REPOSITORY_ROOT}"],
            input=archive.getvalue(),
            capture_output=True,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=True,
        )


def _run(*argv: str, env: dict[str, str] | None = None) -> bytes:
    return subprocess.run(argv, capture_output=True, timeout=TOOL_TIMEOUT_SECONDS, check=True, env=env).stdout


def _deb(pool: Path, *, package: str, version: str, command: str) -> Path:
    build = pool.parent / "build" / package
    (build / "DEBIAN").mkdir(parents=True)
    (build / "usr" / "bin").mkdir(parents=True)
    script = build / "usr" / "bin" / command
    script.write_text(f"#!/bin/sh\necho '{command} {version}'\n")
    script.chmod(0o755)
    (build / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: {ARCH}\n"
        "Maintainer: kobot tests <tests@kobot.invalid>\n"
        f"Description: {package} as the offline repository carries it\n"
    )
    deb = pool / f"{package}_{version}_{ARCH}.deb"
    _run("dpkg-deb", "--root-owner-group", "--build", str(build), str(deb))
    return deb


def _packages_index(repo: Path, debs: list[Path]) -> bytes:
    paragraphs = []
    for deb in debs:
        control = _run("dpkg-deb", "-f", str(deb)).decode().rstrip("\n")
        data = deb.read_bytes()
        paragraphs.append(
            f"{control}\nFilename: {deb.relative_to(repo)}\nSize: {len(data)}\n"
            f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
        )
    return "\n".join(paragraphs).encode()


def _sign(repo: Path, release: bytes) -> None:
    # a short home keeps gpg-agent's socket path within the limit
    home = Path(tempfile.mkdtemp(prefix="kgpg-", dir="/tmp"))
    env = {"GNUPGHOME": str(home), "PATH": "/usr/bin:/bin"}
    try:
        home.chmod(0o700)
        uid = "kobot offline repository (tests) <repo@kobot.invalid>"
        _run("gpg", "--batch", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "1d", env=env)
        (repo / "gpg.key").write_bytes(_run("gpg", "--batch", "--armor", "--export", uid, env=env))
        (repo / "dists" / SUITE / "Release").write_bytes(release)
        signed = subprocess.run(
            ["gpg", "--batch", "--clearsign", "--digest-algo", "SHA256"],
            input=release,
            capture_output=True,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=True,
            env=env,
        ).stdout
        (repo / "dists" / SUITE / "InRelease").write_bytes(signed)
    finally:
        subprocess.run(
            ["gpgconf", "--kill", "gpg-agent"],
            env=env,
            capture_output=True,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=False,
        )
        shutil.rmtree(home, ignore_errors=True)


def write_etcd_archive(files: Path) -> None:
    """etcd's release layout (archive and SHA256SUMS) under `files`: what kube_packages unpacks."""
    directory = files / "etcd" / f"v{ETCD_VERSION}"
    directory.mkdir(parents=True)
    name = f"etcd-v{ETCD_VERSION}-linux-{ARCH}.tar.gz"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for tool in ("etcd", "etcdctl", "etcdutl"):
            script = f"#!/bin/sh\necho '{tool} version: {ETCD_VERSION}'\n".encode()
            info = tarfile.TarInfo(f"etcd-v{ETCD_VERSION}-linux-{ARCH}/{tool}")
            info.size, info.mode = len(script), 0o755
            tar.addfile(info, io.BytesIO(script))
    (directory / name).write_bytes(archive.getvalue())
    (directory / "SHA256SUMS").write_text(f"{hashlib.sha256(archive.getvalue()).hexdigest()}  {name}\n")


def build_local_repository(root: Path, *, kube_version: str) -> LocalRepository:
    """The apt repository for `kube_version` (its packages as pkgs.k8s.io numbers them) and the files."""
    version = kube_version.removeprefix("v")
    minor = ".".join(version.split(".")[:2])
    wanted = (
        ("kubelet", f"{version}-1.1", "kubelet"),
        ("kubeadm", f"{version}-1.1", "kubeadm"),
        ("kubectl", f"{version}-1.1", "kubectl"),
        ("cri-tools", f"{minor}.0-1.1", "crictl"),
    )
    repo = root / "apt"
    pool = repo / "pool"
    pool.mkdir(parents=True)
    debs = [_deb(pool, package=package, version=v, command=command) for package, v, command in wanted]
    shutil.rmtree(repo / "build")
    binary = repo / "dists" / SUITE / "main" / f"binary-{ARCH}"
    binary.mkdir(parents=True)
    index = _packages_index(repo, debs)
    (binary / "Packages").write_bytes(index)
    release = (
        f"Origin: kobot-tests\nLabel: kobot-tests\nSuite: {SUITE}\nCodename: {SUITE}\nArchitectures: {ARCH}\n"
        f"Components: main\nDate: Sun, 29 Nov 2026 00:00:00 UTC\nSHA256:\n"
        f" {hashlib.sha256(index).hexdigest()} {len(index)} main/binary-{ARCH}/Packages\n"
    ).encode()
    _sign(repo, release)
    write_etcd_archive(root / "files")
    return LocalRepository(root=root, kube_packages=tuple((p, v) for p, v, _ in wanted))
