"""`bundle build` against a local upstream: every file verified against its checksum source, resumable,
images copied as OCI layouts by skopeo from a real registry."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from kobot.errors import StepFailedError
from tests.bundle.conftest import PEER_PREFIX, Upstream
from workers.bundle.build import BUNDLE_FILE, build_bundle, verify_built
from workers.bundle.manifest import BuiltBundle, ChecksumKind


def _file_url(upstream: Upstream, path: str) -> str:
    planned = next(f for f in upstream.manifest.files if f.path == path)
    return PEER_PREFIX + "/" + planned.url.split("://", 1)[1]


def test_build_from_peer_fetches_every_file_verified_and_images_as_oci_layouts(
    upstream: Upstream, tmp_path: Path
) -> None:
    into = tmp_path / "bundle"
    built = build_bundle(upstream.manifest, into=into, progress=lambda _line: None)

    assert {f.path for f in built.files} == {f.path for f in upstream.manifest.files}
    for item in built.files:
        assert (into / "files" / item.path).read_bytes() == upstream.contents[item.path]
        assert item.verified_by in (ChecksumKind.SHA256_FILE, ChecksumKind.SUMS_FILE)
    arm = [f.path for f in built.files if "/arm64/" in f.path or "arm64" in f.path.rsplit("/", 1)[1]]
    assert len(arm) == len(built.files) // 2, "every file is planned and fetched for both arches"
    assert {i.ref: i.digest for i in built.images} == upstream.digests
    for image in built.images:
        index = json.loads((into / "images" / image.layout / "index.json").read_text())
        assert index["manifests"][-1]["digest"] == upstream.digests[image.ref]
    recorded = BuiltBundle.model_validate_json((into / BUNDLE_FILE).read_text())
    assert recorded == built
    assert verify_built(into) == built


def test_second_build_keeps_verified_files_and_images_and_downloads_nothing_peer(
    upstream: Upstream, tmp_path: Path
) -> None:
    into = tmp_path / "bundle"
    build_bundle(upstream.manifest, into=into, progress=lambda _line: None)
    path = upstream.manifest.files[0].path
    before = len(upstream.peer.downloads(_file_url(upstream, path)))
    layout_mtime = (into / "images" / f"{next(iter(into.glob('images/*.json'))).stem}").stat().st_mtime_ns

    build_bundle(upstream.manifest, into=into, progress=lambda _line: None)

    assert len(upstream.peer.downloads(_file_url(upstream, path))) == before
    assert (into / "images" / next(iter(into.glob("images/*.json"))).stem).stat().st_mtime_ns == layout_mtime


def test_interrupted_download_resumes_with_a_range_request_peer(upstream: Upstream, tmp_path: Path) -> None:
    into = tmp_path / "bundle"
    planned = upstream.manifest.files[1]
    body = upstream.contents[planned.path]
    part = into / "files" / f"{planned.path}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(body[:1000])

    build_bundle(upstream.manifest, into=into, progress=lambda _line: None)

    asked = upstream.peer.downloads(_file_url(upstream, planned.path))
    assert asked[-1].range == "bytes=1000-"
    assert (into / "files" / planned.path).read_bytes() == body
    assert not part.exists()


def test_server_ignoring_the_range_gets_the_download_restarted_not_appended_peer(
    upstream: Upstream, tmp_path: Path
) -> None:
    into = tmp_path / "bundle"
    planned = upstream.manifest.files[2]
    body = upstream.contents[planned.path]
    part = into / "files" / f"{planned.path}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(body[:1000])
    upstream.peer.ignore_ranges = True
    try:
        build_bundle(upstream.manifest, into=into, progress=lambda _line: None)
    finally:
        upstream.peer.ignore_ranges = False

    assert (into / "files" / planned.path).read_bytes() == body


def test_download_that_differs_from_its_checksum_stops_the_build_and_is_removed_peer(
    upstream: Upstream, tmp_path: Path
) -> None:
    into = tmp_path / "bundle"
    planned = upstream.manifest.files[0]
    url = _file_url(upstream, planned.path)
    good = upstream.peer.files[url]
    upstream.peer.files[url] = good[:-1] + b"X"
    try:
        with pytest.raises(StepFailedError) as failed:
            build_bundle(upstream.manifest, into=into, progress=lambda _line: None)
    finally:
        upstream.peer.files[url] = good

    assert planned.path in failed.value.user_message
    assert "sha256" in failed.value.user_message
    assert not (into / "files" / planned.path).exists()
    assert not (into / "files" / f"{planned.path}.part").exists()
    assert not (into / BUNDLE_FILE).exists()


def test_sums_file_without_the_entry_stops_the_build_peer(upstream: Upstream, tmp_path: Path) -> None:
    planned = next(f for f in upstream.manifest.files if f.checksum.kind is ChecksumKind.SUMS_FILE)
    path = PEER_PREFIX + "/" + planned.checksum.url.split("://", 1)[1]
    sums = upstream.peer.files[path]
    upstream.peer.files[path] = b"\n".join(
        line for line in sums.splitlines() if planned.checksum.entry.encode() not in line
    )
    try:
        with pytest.raises(StepFailedError, match=f"lists no sha256 for {planned.checksum.entry}"):
            build_bundle(upstream.manifest, into=tmp_path / "bundle", progress=lambda _line: None)
    finally:
        upstream.peer.files[path] = sums


def test_tarball_holds_the_bundle_peer(upstream: Upstream, tmp_path: Path) -> None:
    into = tmp_path / "bundle"
    build_bundle(upstream.manifest, into=into, tarball=True, progress=lambda _line: None)

    with tarfile.open(tmp_path / "kobot-bundle.tar") as tar:
        names = set(tar.getnames())
    assert f"bundle/{BUNDLE_FILE}" in names
    assert f"bundle/files/{upstream.manifest.files[0].path}" in names


def test_verify_notices_a_file_changed_after_the_build_peer(upstream: Upstream, tmp_path: Path) -> None:
    into = tmp_path / "bundle"
    built = build_bundle(upstream.manifest, into=into, progress=lambda _line: None)
    (into / "files" / built.files[0].path).write_bytes(b"tampered")

    with pytest.raises(StepFailedError, match="changed since the build"):
        verify_built(into)


def test_every_file_is_also_reachable_by_its_sha256_peer(upstream: Upstream, tmp_path: Path) -> None:
    into = tmp_path / "bundle"
    built = build_bundle(upstream.manifest, into=into, progress=lambda _line: None)

    for item in built.files:
        link = into / "files" / "sha256" / item.sha256
        assert link.is_symlink() and not link.readlink().is_absolute(), "relative: it survives a copy"
        assert link.read_bytes() == upstream.contents[item.path]


def test_cli_build_fetches_the_manifest_and_says_what_it_holds_peer(
    upstream: Upstream, tmp_path: Path
) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(upstream.manifest.model_dump_json())
    into = tmp_path / "bundle"

    result = CliRunner().invoke(app, ["bundle", "build", str(manifest), "--into", str(into), "--tarball"])

    assert result.exit_code == 0, result.output
    files, images = len(upstream.manifest.files), len(upstream.manifest.images)
    assert f"bundle in {into}: {files} files, {images} images, 0 charts" in result.output
    assert verify_built(into).manifest == upstream.manifest
    assert (tmp_path / "kobot-bundle.tar").is_file()


def test_cli_build_answers_a_failed_download_with_exit_1_peer(upstream: Upstream, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    broken = upstream.manifest.model_copy(
        update={
            "upstream": {**upstream.manifest.upstream, "https://dl.k8s.io": upstream.peer.origin + "/nowhere"}
        }
    )
    manifest.write_text(broken.model_dump_json())

    result = CliRunner().invoke(app, ["bundle", "build", str(manifest), "--into", str(tmp_path / "bundle")])

    assert result.exit_code == 1
    assert "answered HTTP 404" in result.output
