"""A package mirror on loopback: the apt and rpm indexes an offline repository serves, built from a list
of (name, version) packages in the real formats.

apt: `dists/<suite>/main/binary-<arch>/Packages.gz`, Debian control paragraphs as `apt-ftparchive`
writes them (Version `1.31.2-1.1`, as pkgs.k8s.io numbers them). rpm: `repodata/repomd.xml` naming a
`<checksum>-primary.xml.gz` in createrepo_c's namespaces. Files are served as plain static files;
`requests` records every path asked, and the shared faults (`slow`, `fail_next`) apply.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Sequence
from xml.sax.saxutils import quoteattr

from aiohttp import web

from tests.peers.loopback import LoopbackPeer, Recording

Package = tuple[str, str]
"""(name, upstream version), like ("kubeadm", "1.31.2")."""


def apt_packages(packages: Sequence[Package], *, arch: str) -> bytes:
    """A `Packages` index: one paragraph per package, the fields apt needs to pick a version."""
    paragraphs = [
        f"Package: {name}\nArchitecture: {arch}\nVersion: {version}-1.1\nPriority: optional\n"
        f"Section: admin\nMaintainer: Kubernetes Authors <dev@kubernetes.io>\nInstalled-Size: 60000\n"
        f"Filename: pool/{name}_{version}-1.1_{arch}.deb\nSize: 12345678\n"
        f"SHA256: {hashlib.sha256(f'{name}{version}'.encode()).hexdigest()}\n"
        f"Description: {name} for Kubernetes\n a continuation line, as long descriptions have\n"
        for name, version in packages
    ]
    return "\n".join(paragraphs).encode()


def rpm_primary(packages: Sequence[Package], *, arch: str) -> bytes:
    rows = "".join(
        f'<package type="rpm"><name>{name}</name><arch>{arch}</arch>'
        f'<version epoch="0" ver={quoteattr(version)} rel="150500.1.1"/>'
        f'<checksum type="sha256" pkgid="YES">{hashlib.sha256(f"{name}{version}".encode()).hexdigest()}'
        f"</checksum><summary>{name}</summary>"
        f'<location href="{name}-{version}-150500.1.1.{arch}.rpm"/></package>'
        for name, version in packages
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<metadata xmlns="http://linux.duke.edu/metadata/common" '
        f'xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="{len(packages)}">{rows}</metadata>'
    ).encode()


def rpm_repomd(primary_href: str, *, checksum: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">'
        "<revision>1732838400</revision>"
        f'<data type="primary"><checksum type="sha256">{checksum}</checksum>'
        f'<location href="{primary_href}"/><timestamp>1732838400</timestamp></data>'
        "</repomd>"
    ).encode()


class PackageMirrorPeer(LoopbackPeer):
    """Serves `files` (path → bytes) under `/repo`; `base_url` is what a cluster spec names."""

    thread_name = "package-mirror-peer"

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, bytes] = {}
        self.requests: Recording[str] = Recording()

    @property
    def base_url(self) -> str:
        return f"{self.origin}/repo"

    def serve_apt(self, packages: Sequence[Package], *, suite: str, arch: str = "amd64") -> None:
        index = gzip.compress(apt_packages(packages, arch=arch))
        self.files[f"/repo/dists/{suite}/main/binary-{arch}/Packages.gz"] = index

    def serve_rpm(self, packages: Sequence[Package], *, arch: str = "x86_64") -> None:
        primary = gzip.compress(rpm_primary(packages, arch=arch))
        digest = hashlib.sha256(primary).hexdigest()
        href = f"repodata/{digest}-primary.xml.gz"
        self.files[f"/repo/{href}"] = primary
        self.files["/repo/repodata/repomd.xml"] = rpm_repomd(href, checksum=digest)

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._file)
        return app

    async def _file(self, request: web.Request) -> web.StreamResponse:
        self.requests.add(request.path)
        fault = self.faults.take(request.path)
        await self.apply_delay(fault)
        if fault is not None and fault.status:
            return web.Response(status=fault.status)
        body = self.files.get(request.path)
        if body is None:
            return web.Response(status=404)
        return web.Response(body=body, content_type="application/octet-stream")
