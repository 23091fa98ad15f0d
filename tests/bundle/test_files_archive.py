"""The bundle's files/ as the one tar `setup repository` hands to the repository host."""

from __future__ import annotations

import tarfile
from pathlib import Path

from workers.bundle.files_archive import files_archive, loaded_marker


def _bundle(root: Path) -> Path:
    files = root / "bundle" / "files"
    (files / "packages" / "pool").mkdir(parents=True)
    (files / "sha256").mkdir()
    (files / "packages" / "pool" / "chrony.deb").write_bytes(b"deb")
    kubeadm = files / "kubeadm"
    kubeadm.write_bytes(b"binary")
    kubeadm.chmod(0o700)
    (files / "sha256" / "ab").symlink_to("../kubeadm")
    return root / "bundle"


def test_archive_holds_every_file_root_owned_as_served_with_links_kept_and_its_marker(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    archive = files_archive(bundle, bundle_sha256="0123456789abcdef" + "0" * 48)

    assert archive == bundle.parent / "bundle-files-0123456789abcdef.tar", "beside the bundle, not in it"
    with tarfile.open(archive) as tar:
        members = {member.name: member for member in tar.getmembers()}
        assert set(members) == {
            "kubeadm",
            "packages",
            "packages/pool",
            "packages/pool/chrony.deb",
            "sha256",
            "sha256/ab",
            loaded_marker(archive),
        }
        assert all(m.uid == 0 and m.gid == 0 and m.uname == "root" for m in members.values())
        assert members["kubeadm"].mode == 0o644, "served to anyone, whatever its mode in the bundle"
        assert members["packages/pool"].mode == 0o755
        assert members["sha256/ab"].issym() and members["sha256/ab"].linkname == "../kubeadm"
        kubeadm = tar.extractfile("kubeadm")
        assert kubeadm is not None and kubeadm.read() == b"binary"
    assert loaded_marker(archive) == ".kobot-loaded-bundle-files-0123456789abcdef"


def test_archive_is_made_once_per_bundle_and_an_earlier_bundles_is_removed(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    first = files_archive(bundle, bundle_sha256="a" * 64)
    made = first.stat().st_mtime_ns
    assert files_archive(bundle, bundle_sha256="a" * 64) == first
    assert first.stat().st_mtime_ns == made, "the same bundle's archive is reused"

    (bundle / "files" / "kubeadm").write_bytes(b"newer")
    second = files_archive(bundle, bundle_sha256="b" * 64)
    assert second != first and not first.exists()
    assert sorted(p.name for p in bundle.parent.glob("bundle-files-*")) == [second.name]
    with tarfile.open(second) as tar:
        newer = tar.extractfile("kubeadm")
        assert newer is not None and newer.read() == b"newer"
