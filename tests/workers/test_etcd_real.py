"""workers.etcd with a REAL etcd (Debian etcd-server) and etcdctl on free loopback ports."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis

from kobot.errors import NotFoundError, StepFailedError
from tests.support.network import free_port
from workers.etcd import (
    EtcdAccess,
    EtcdMember,
    endpoint_healthy,
    get_backup,
    list_backups,
    restore_snapshot,
    snapshot_save,
    verified_file,
)

START_TIMEOUT_SECONDS = 15.0
"""A single loopback member is healthy in well under a second; this bounds a stuck start."""


@dataclass
class EtcdProcess:
    name: str
    data_dir: Path
    client_url: str
    peer_url: str
    process: subprocess.Popen[bytes]

    @property
    def access(self) -> EtcdAccess:
        return EtcdAccess(endpoints=(self.client_url,))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_etcd(
    *, data_dir: Path, name: str = "m1", peer_port: int | None = None, restored: bool = False
) -> EtcdProcess:
    """Start one member; `restored` means data_dir came from `snapshot restore` (its peer URL fixed)."""
    client_url = f"http://127.0.0.1:{free_port()}"
    peer_url = f"http://127.0.0.1:{peer_port or free_port()}"
    args = [
        "etcd",
        f"--name={name}",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
    ]
    if not restored:
        args += [f"--initial-advertise-peer-urls={peer_url}", f"--initial-cluster={name}={peer_url}"]
    log = (data_dir.parent / f"{data_dir.name}.log").open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    member = EtcdProcess(name, data_dir, client_url, peer_url, process)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not endpoint_healthy(access=member.access):
        if process.poll() is not None or time.monotonic() > deadline:
            member.stop()
            raise AssertionError(
                f"etcd did not start: {(data_dir.parent / f'{data_dir.name}.log').read_text()}"
            )
        time.sleep(0.1)
    return member


def etcdctl(member: EtcdProcess, *args: str) -> str:
    env = {"PATH": os.environ["PATH"], **member.access.environment()}
    return subprocess.run(["etcdctl", *args], env=env, capture_output=True, text=True, check=True).stdout


def keys(member: EtcdProcess) -> dict[str, str]:
    raw = json.loads(etcdctl(member, "get", "", "--prefix", "--write-out=json"))
    import base64

    return {
        base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode()
        for kv in raw.get("kvs", [])
    }


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdProcess]:
    member = start_etcd(data_dir=tmp_path / "etcd-live")
    yield member
    member.stop()


def test_snapshot_then_restore_serves_exactly_the_keys_at_snapshot_time_real_etcd(
    etcd: EtcdProcess, redis: Redis, data_dir: Path, tmp_path: Path
) -> None:
    etcdctl(etcd, "put", "/registry/a", "1")
    etcdctl(etcd, "put", "/registry/b", "2")

    backup = snapshot_save(access=etcd.access, cluster="demo", data_dir=data_dir, redis=redis, job_id="7")

    etcdctl(etcd, "put", "/registry/c", "3")
    etcdctl(etcd, "put", "/registry/a", "changed")
    etcdctl(etcd, "del", "/registry/b")
    path = data_dir / "backups" / "demo" / f"{backup.id}.db"
    assert path.is_file() and backup.size == path.stat().st_size > 0
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert backup.job_id == "7" and backup.total_keys and backup.revision
    assert verified_file(data_dir=data_dir, backup=backup) == path

    peer_port = free_port()
    member = EtcdMember(
        name="r1",
        peer_url=f"http://127.0.0.1:{peer_port}",
        initial_cluster=f"r1=http://127.0.0.1:{peer_port}",
    )
    restore_snapshot(snapshot=path, member_dir=tmp_path / "etcd-restored", member=member)
    restored = start_etcd(data_dir=tmp_path / "etcd-restored", name="r1", peer_port=peer_port, restored=True)
    try:
        assert keys(restored) == {"/registry/a": "1", "/registry/b": "2"}
    finally:
        restored.stop()
    assert keys(etcd) == {"/registry/a": "changed", "/registry/c": "3"}


def test_backups_are_recorded_listed_newest_first_and_checked(
    etcd: EtcdProcess, redis: Redis, data_dir: Path
) -> None:
    first = snapshot_save(access=etcd.access, cluster="demo", data_dir=data_dir, redis=redis)
    etcdctl(etcd, "put", "k", "v")
    second = snapshot_save(access=etcd.access, cluster="demo", data_dir=data_dir, redis=redis)
    assert first.id != second.id and first.id.startswith("demo-")
    assert [b.id for b in list_backups(redis=redis, cluster="demo")] == [second.id, first.id]
    assert list_backups(redis=redis, cluster="other") == []
    assert get_backup(redis=redis, backup_id=first.id, cluster="demo").sha256 == first.sha256
    with pytest.raises(NotFoundError, match=f"demo has no backup nope .*{second.id}"):
        get_backup(redis=redis, backup_id="nope", cluster="demo")
    with pytest.raises(NotFoundError):
        get_backup(redis=redis, backup_id=first.id, cluster="other")

    path = data_dir / "backups" / "demo" / first.file
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(StepFailedError, match="does not match its recorded checksum"):
        verified_file(data_dir=data_dir, backup=first)


def test_unreachable_etcd_fails_clearly_and_leaves_no_file(redis: Redis, data_dir: Path) -> None:
    access = EtcdAccess(endpoints=(f"http://127.0.0.1:{free_port()}",))
    with pytest.raises(StepFailedError, match="etcd of demo gave no snapshot") as failed:
        snapshot_save(access=access, cluster="demo", data_dir=data_dir, redis=redis)
    assert failed.value.error
    assert list((data_dir / "backups" / "demo").iterdir()) == []
    assert list_backups(redis=redis, cluster="demo") == []


def test_certificates_travel_by_path_in_the_environment_not_argv() -> None:
    access = EtcdAccess(
        endpoints=("https://10.0.0.1:2379", "https://10.0.0.2:2379"),
        cacert=Path("/etc/kubernetes/pki/etcd/ca.crt"),
        cert=Path("/etc/kubernetes/pki/etcd/healthcheck-client.crt"),
        key=Path("/etc/kubernetes/pki/etcd/healthcheck-client.key"),
    )
    env = access.environment()
    assert env["ETCDCTL_ENDPOINTS"] == "https://10.0.0.1:2379,https://10.0.0.2:2379"
    assert env["ETCDCTL_KEY"] == "/etc/kubernetes/pki/etcd/healthcheck-client.key"
    assert env["ETCDCTL_CACERT"].endswith("ca.crt") and env["ETCDCTL_API"] == "3"


def test_restore_never_writes_over_an_existing_data_dir(tmp_path: Path) -> None:
    target = tmp_path / "member"
    target.mkdir()
    (target / "member").mkdir()
    member = EtcdMember(name="r1", peer_url="http://127.0.0.1:1", initial_cluster="r1=http://127.0.0.1:1")
    with pytest.raises(StepFailedError, match="not empty"):
        restore_snapshot(snapshot=tmp_path / "x.db", member_dir=target, member=member)
