"""`bundle build` with an addon chart: the archive checked against the repository index's digest, then
rendered (Helm, in its child process), and an image the render names that the plan lacks is copied too."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from kobot.errors import StepFailedError
from tests.bundle.conftest import PEER_PREFIX, Upstream
from tests.bundle.upstream import push_layout, write_oci_layout
from workers.bundle.build import build_bundle
from workers.bundle.manifest import BundleManifest, PlannedChart, PlannedImage

CHART_REPOSITORY = "https://grafana.github.io/helm-charts"
PLANNED_IMAGE = "docker.io/grafana/loki:3.7.6"
RENDER_ONLY_IMAGE = "quay.io/kobot-test/render-only:1.0"
TEMPLATE = f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{{{ .Release.Name }}}}-loki
spec:
  selector:
    matchLabels: {{app: loki}}
  template:
    metadata:
      labels: {{app: loki}}
    spec:
      containers:
        - name: loki
          image: {PLANNED_IMAGE}
        - name: extra
          image: {RENDER_ONLY_IMAGE}
"""


def _chart_archive() -> bytes:
    files = {
        "loki/Chart.yaml": b"apiVersion: v2\nname: loki\nversion: 18.11.0\n",
        "loki/templates/deployment.yaml": TEMPLATE.encode(),
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def _serve_chart(upstream: Upstream, archive: bytes, *, digest: str) -> str:
    base = f"{PEER_PREFIX}/charts"
    upstream.peer.files[f"{base}/loki-18.11.0.tgz"] = archive
    upstream.peer.files[f"{base}/index.yaml"] = (
        "apiVersion: v1\nentries:\n  loki:\n    - name: loki\n      version: 18.11.0\n"
        f"      digest: {digest}\n      urls: [loki-18.11.0.tgz]\n"
    ).encode()
    return f"{upstream.peer.origin}{base}"


def _manifest(upstream: Upstream, repository: str) -> BundleManifest:
    registry = f"http://{upstream.registry}"
    return upstream.manifest.model_copy(
        update={
            "files": upstream.manifest.files[:1],
            "images": (*upstream.manifest.images, PlannedImage(ref=PLANNED_IMAGE, group="addon:logging")),
            "charts": (
                PlannedChart(name="loki", version="18.11.0", repository=CHART_REPOSITORY, addon="logging"),
            ),
            "upstream": {
                **upstream.manifest.upstream,
                CHART_REPOSITORY: repository,
                "docker.io": f"{registry}/docker.io",
                "quay.io": f"{registry}/quay.io",
            },
        }
    )


def _push(upstream: Upstream, tmp_path: Path, ref: str) -> str:
    name, _, tag = ref.rpartition(":")
    layout = tmp_path / "layouts" / hashlib.sha256(ref.encode()).hexdigest()[:12]
    digest = write_oci_layout(layout, tag=tag, text=f"image {ref}")
    push_layout(layout, tag=tag, to=f"{upstream.registry}/{name}:{tag}")
    return digest


def test_an_image_only_the_chart_render_names_is_carried_too_peer(upstream: Upstream, tmp_path: Path) -> None:
    archive = _chart_archive()
    repository = _serve_chart(upstream, archive, digest=hashlib.sha256(archive).hexdigest())
    digests = {ref: _push(upstream, tmp_path, ref) for ref in (PLANNED_IMAGE, RENDER_ONLY_IMAGE)}
    lines: list[str] = []

    built = build_bundle(_manifest(upstream, repository), into=tmp_path / "bundle", progress=lines.append)

    by_ref = {image.ref: image.digest for image in built.images}
    assert by_ref[RENDER_ONLY_IMAGE] == digests[RENDER_ONLY_IMAGE]
    assert by_ref[PLANNED_IMAGE] == digests[PLANNED_IMAGE]
    assert f"image {RENDER_ONLY_IMAGE}: named by the loki render, added" in lines
    assert [(c.name, c.sha256) for c in built.charts] == [("loki", hashlib.sha256(archive).hexdigest())]
    assert (tmp_path / "bundle" / built.charts[0].path).read_bytes() == archive


def test_a_chart_that_differs_from_its_index_digest_stops_the_build_peer(
    upstream: Upstream, tmp_path: Path
) -> None:
    archive = _chart_archive()
    repository = _serve_chart(upstream, archive, digest="f" * 64)

    with pytest.raises(StepFailedError, match="does not match the digest"):
        build_bundle(_manifest(upstream, repository), into=tmp_path / "bundle", progress=lambda _line: None)
