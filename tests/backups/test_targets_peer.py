"""Backup targets against real things: the S3 peer checking SigV4 over a socket, a directory, and the
AWS documentation's own signing example (a golden signature the signer must reproduce)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from kobot.automation_values import UnsafeValueError
from kobot.errors import StepFailedError
from kobot.settings_backups import BackupSettings, S3Target
from tests.peers.s3 import S3Peer
from workers.backup_targets import object_key, sigv4
from workers.backup_targets.directory import DirectoryStore
from workers.backup_targets.s3 import S3Store

ACCESS = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_signer_reproduces_the_aws_documentation_get_object_example() -> None:
    # "Example: GET Object" of the SigV4 header-based auth page: its published signature
    headers = {
        "Host": "examplebucket.s3.amazonaws.com",
        "Range": "bytes=0-9",
        "x-amz-content-sha256": sigv4.EMPTY_SHA256,
        "x-amz-date": "20130524T000000Z",
    }
    value = sigv4.authorization(
        method="GET",
        path="/test.txt",
        query={},
        headers=headers,
        payload_sha256=sigv4.EMPTY_SHA256,
        access_key_id=ACCESS,
        secret_key=SECRET,
        region="us-east-1",
        now=datetime(2013, 5, 24, tzinfo=UTC),
    )
    assert value == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def _snapshot(tmp_path: Path, data: bytes = b"etcd snapshot bytes" * 1000) -> tuple[Path, str]:
    path = tmp_path / "snap.db"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def _s3(peer: S3Peer, *, secret: str = SECRET) -> S3Store:
    config = S3Target(
        endpoint_url=peer.origin,
        bucket="kobot-test",
        prefix="etcd",
        access_key_id=ACCESS,
        secret_access_key=SecretStr(secret),
    )
    return S3Store(name="offsite", config=config)


def test_s3_put_fetch_delete_round_trip_with_signed_requests_peer(tmp_path: Path) -> None:
    source, digest = _snapshot(tmp_path)
    key = object_key(cluster="prod", backup_id="prod-20260101-020000")
    with S3Peer(access_key_id=ACCESS, secret_key=SECRET) as peer:
        store = _s3(peer)
        store.put(source=source, key=key, sha256=digest)
        assert peer.objects["/kobot-test/etcd/prod/prod-20260101-020000.db"] == source.read_bytes()
        dest = tmp_path / "back.db"
        store.fetch(key=key, dest=dest)
        assert dest.read_bytes() == source.read_bytes()
        assert dest.stat().st_mode & 0o777 == 0o600
        store.delete(key=key)
        assert peer.objects == {}
        assert [m for m, _ in peer.requests] == ["PUT", "GET", "DELETE"]


def test_s3_wrong_secret_is_refused_and_the_secret_is_not_in_the_error_peer(tmp_path: Path) -> None:
    source, digest = _snapshot(tmp_path)
    with S3Peer(access_key_id=ACCESS, secret_key=SECRET) as peer:
        store = _s3(peer, secret="not-the-secret-at-all")
        with pytest.raises(StepFailedError) as failure:
            store.put(source=source, key="prod/prod-1.db", sha256=digest)
    assert "SignatureDoesNotMatch" in str(failure.value.error)
    assert "not-the-secret" not in repr(failure.value) and "not-the-secret" not in repr(store.config)
    assert peer.objects == {}


def test_s3_refuses_a_body_that_is_not_the_recorded_snapshot_peer(tmp_path: Path) -> None:
    source, _ = _snapshot(tmp_path)
    with S3Peer(access_key_id=ACCESS, secret_key=SECRET) as peer:
        with pytest.raises(StepFailedError, match="HTTP 400"):
            _s3(peer).put(source=source, key="prod/prod-1.db", sha256=hashlib.sha256(b"other").hexdigest())
        assert peer.objects == {}


def test_directory_target_writes_atomically_and_keys_cannot_leave_it(tmp_path: Path) -> None:
    source, digest = _snapshot(tmp_path)
    share = tmp_path / "nfs"
    share.mkdir()
    store = DirectoryStore(name="nas", kind="nfs", root=share)
    store.put(source=source, key="prod/prod-1.db", sha256=digest)
    assert (share / "prod" / "prod-1.db").read_bytes() == source.read_bytes()
    assert [p.name for p in (share / "prod").iterdir()] == ["prod-1.db"]
    dest = tmp_path / "fetched.db"
    store.fetch(key="prod/prod-1.db", dest=dest)
    assert dest.read_bytes() == source.read_bytes()
    store.delete(key="prod/prod-1.db")
    assert not (share / "prod" / "prod-1.db").exists()
    with pytest.raises(UnsafeValueError):
        store.put(source=source, key="../escape.db", sha256=digest)


def test_directory_target_that_is_not_mounted_is_reported(tmp_path: Path) -> None:
    source, digest = _snapshot(tmp_path)
    store = DirectoryStore(name="nas", kind="nfs", root=tmp_path / "missing")
    with pytest.raises(StepFailedError, match="mounted"):
        store.put(source=source, key="prod/prod-1.db", sha256=digest)


def test_target_settings_refuse_local_and_duplicate_names() -> None:
    s3 = {
        "endpoint_url": "http://127.0.0.1:9000",
        "bucket": "b-1",
        "access_key_id": "a",
        "secret_access_key": "s",
    }
    with pytest.raises(ValidationError, match="kobot's own disk"):
        BackupSettings.model_validate({"s3": {"local": s3}})
    with pytest.raises(ValidationError, match="names must differ"):
        BackupSettings.model_validate({"s3": {"off": s3}, "nfs": {"off": {"path": "/mnt/nfs"}}})
    settings = BackupSettings.model_validate({"s3": {"off": s3}})
    assert settings.s3["off"].secret_access_key.get_secret_value() == "s"
    assert "'s'" not in repr(settings) and "**********" in repr(settings)
