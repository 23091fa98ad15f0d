"""A local "upstream" for bundle tests: a file server with checksum files and HTTP ranges (a peer), a
real distribution registry (Debian's docker-registry) on loopback, and small OCI images the test
writes as layouts and pushes there with skopeo."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from tests.peers.loopback import LoopbackPeer, Recording
from tests.support.network import LOOPBACK, free_port
from tests.support.waiting import wait_for
from workers.bundle.manifest import BundleManifest, ChecksumKind

REGISTRY_START_SECONDS = 15.0
"""How long a fresh docker-registry may take to answer /v2/."""

SKOPEO_SECONDS = 60.0
"""Upper bound of one skopeo call on tiny test images."""


@dataclass(frozen=True)
class Request:
    path: str
    range: str | None


class UpstreamFilesPeer(LoopbackPeer):
    """Serves `files` (path → bytes) with `Range` support unless `ignore_ranges`; records each request."""

    thread_name = "bundle-upstream-peer"

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, bytes] = {}
        self.requests: Recording[Request] = Recording()
        self.ignore_ranges = False

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._file)
        return app

    async def _file(self, request: web.Request) -> web.StreamResponse:
        wanted = request.headers.get("Range")
        self.requests.add(Request(path=request.path, range=wanted))
        fault = self.faults.take(request.path)
        if fault is not None and fault.status:
            return web.Response(status=fault.status)
        body = self.files.get(request.path)
        if body is None:
            return web.Response(status=404)
        if wanted and not self.ignore_ranges and wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[len("bytes=") : -1])
            if start >= len(body):
                return web.Response(status=416)
            return web.Response(
                status=206,
                body=body[start:],
                headers={"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"},
            )
        return web.Response(body=body, content_type="application/octet-stream")

    def downloads(self, path: str) -> list[Request]:
        return self.requests.where(lambda r: r.path == path)


def serve_planned_files(
    peer: UpstreamFilesPeer, manifest: BundleManifest, *, prefix: str
) -> dict[str, bytes]:
    """Put every planned file (random-ish bytes) and its checksum source on `peer`; path → content.
    `prefix` is the URL prefix the manifest's `upstream` maps to the peer's origin."""
    contents: dict[str, bytes] = {}
    sums: dict[str, list[str]] = {}
    for planned in manifest.files:
        body = hashlib.sha512(planned.url.encode()).digest() * 300
        contents[planned.path] = body
        peer.files[_peer_path(planned.url, prefix)] = body
        digest = hashlib.sha256(body).hexdigest()
        if planned.checksum.kind is ChecksumKind.SHA256_FILE:
            peer.files[_peer_path(planned.checksum.url, prefix)] = f"{digest}\n".encode()
        elif planned.checksum.kind is ChecksumKind.SUMS_FILE:
            sums.setdefault(planned.checksum.url, []).append(f"{digest}  {planned.checksum.entry}")
    for url, lines in sums.items():
        other = "0" * 64 + "  some-other-asset.tar.gz"
        peer.files[_peer_path(url, prefix)] = "\n".join([other, *lines, ""]).encode()
    return contents


def _peer_path(url: str, prefix: str) -> str:
    host_and_path = url.split("://", 1)[1]
    return prefix + "/" + host_and_path


def write_oci_layout(layout: Path, *, tag: str, text: str, arch: str = "amd64") -> str:
    """A one-layer image (a file holding `text`) as an OCI layout; its manifest digest."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}", len(data)

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("etc/kobot-test-image")
        payload = text.encode()
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    layer, layer_size = blob(gzip.compress(raw.getvalue(), mtime=0))
    config = {
        "architecture": arch,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(raw.getvalue()).hexdigest()}"]},
        "config": {},
    }
    config_digest, config_size = blob(json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_size}
        ],
    }
    manifest_digest, manifest_size = blob(json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return manifest_digest


def skopeo_run(*args: str) -> subprocess.CompletedProcess[str]:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        pytest.fail("skopeo is not installed (tests/apt-packages.txt lists it)")
    return subprocess.run(
        [skopeo, "--insecure-policy", *args],
        capture_output=True,
        text=True,
        timeout=SKOPEO_SECONDS,
        check=False,
    )


def push_layout(layout: Path, *, tag: str, to: str) -> None:
    """Push an OCI layout to `to` (host:port/path:tag, plain HTTP)."""
    done = skopeo_run("copy", "--dest-tls-verify=false", f"oci:{layout}:{tag}", f"docker://{to}")
    assert done.returncode == 0, done.stderr


def registry_config(*, address: str, storage: Path) -> str:
    """docker-registry's config: plain HTTP on `address`, filesystem storage, no auth."""
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {address}\n"
    )


@contextmanager
def running_registry(work: Path) -> Iterator[str]:
    """A real docker-registry on loopback; yields its host:port."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed (tests/apt-packages.txt lists it)")
    address = f"{LOOPBACK}:{free_port()}"
    work.mkdir(parents=True, exist_ok=True)
    config = work / "registry.yml"
    config.write_text(registry_config(address=address, storage=work / "storage"))
    log = (work / "registry.log").open("wb")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: _answers(address), timeout=REGISTRY_START_SECONDS, what=f"docker-registry on {address}"
        )
        yield address
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _answers(address: str) -> bool:
    try:
        return httpx.get(f"http://{address}/v2/", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
