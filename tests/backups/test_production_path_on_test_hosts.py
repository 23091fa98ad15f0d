"""The production backup path end to end, as a kobot configured for off-host backups runs it.

Real parts: chat lines through the dispatcher, policy and approvals (real Valkey); the etcd.backup and
etcd.restore jobs on a real RQ worker; the real `etcd_backup.yml` and `etcd_restore.yml` through
ansible-runner over SSH to a test host (a Debian 12 root running sshd) where this machine's etcd and
etcdctl run with kubeadm's certificate layout; the SFTP target is another test host's real sshd, reached
with strict host keys. kobot holds no etcd access for the cluster, which is what production has: the
snapshot is taken on the master by the playbook and fetched, not read by kobot directly.

Stand-ins, because no real one can run in a test host: the kubelet's handling of static pods is a shell
loop (a manifest in /etc/kubernetes/manifests runs its process, one moved away stops it; the API server
is a listener on 6443), and the API the last restore step asks for Ready nodes is the Kubernetes API
peer.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from bot.dispatcher import Dispatcher
from bot.runtime import Runtime
from kobot.cluster_spec import ClusterShape
from kobot.clusters import ClusterRecord, ClusterState, NodeRecord, NodeState
from kobot.conversations import ButtonClick, Identity, InboundMessage
from kobot.job_records import JobEventType, JobKind, JobRecord, JobState, StepState
from kobot.messages import MessageKind, OutgoingMessage
from kobot.settings_backups import BackupSettings, SftpTarget
from kobot.store import secret_key
from tests.bot.recording_adapter import RecordingAdapter
from tests.hosts.lab import HostLab, LabHost
from tests.peers.kubernetes import KubernetesApiPeer
from tests.playbooks.etcd_lab import (
    ETCD_CLIENT_ENV,
    ETCD_PKI,
    MANIFESTS,
    RUNNER_PATH,
    STATIC_POD_RUNNER,
    etcd_pki,
    install_etcd,
    start_etcd,
    stop_etcd,
)
from tests.playbooks.roles_lab import PLAYBOOKS, RolesLab, wait_until_listening
from tests.support.dispatching import (
    ADMIN,
    OPERATOR,
    OPERATOR_ON_PROD_ADMIN_EVERYWHERE,
    ROOM,
    dispatching_runtime,
)
from tests.workers.jobkit import job_service, run_queue
from workers import etcd
from workers.backup_schedule import ScheduleStore, run_due
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets
from workers.events import read_job_events

MASTER = "prod-master-1"
ETCD_COMMAND = (
    "setsid -f /usr/local/bin/etcd --name " + MASTER + " --data-dir /var/lib/etcd"
    " --listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379"
    " --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380"
    f" --initial-cluster {MASTER}=http://127.0.0.1:2380"
    f" --cert-file {ETCD_PKI}/server.crt --key-file {ETCD_PKI}/server.key --client-cert-auth"
    f" --trusted-ca-file {ETCD_PKI}/ca.crt >>/var/log/etcd.log 2>&1 </dev/null"
)
"""etcd as its static pod would run it; the restore brings it back with the same command."""
SITE_VARS = {
    "etcdctl_bin": "/usr/local/bin/etcdctl",
    "etcdutl_bin": "/usr/local/bin/etcdctl",
    # this machine's etcdctl is 3.4, which restores without --bump-revision/--mark-compacted
    "etcd_restore_bump_revision": 0,
    "etcd_restore_pod_timeout_seconds": 30,
    # the test hosts have no systemd, package manager or kernel of their own
    "kobot_manage_services": False,
    "kobot_manage_packages": False,
    "kobot_manage_kernel": False,
}
"""What the site's ansible_extra_vars say for these hosts."""


@pytest.fixture
def master(host_lab: HostLab, tmp_path: Path) -> Iterator[RolesLab]:
    """A test host of its own, as prod's only master: etcd running as its static pod would, and the
    kubelet stand-in keeping etcd and the API server up while their manifests are in place."""
    [host] = host_lab.start(count=1)
    lab = RolesLab(hosts={MASTER: host}, inventory=tmp_path / "unused-inventory.yml", work=tmp_path)
    try:
        install_etcd(lab, MASTER, pki=etcd_pki(tmp_path / "etcd-pki"))
        start_etcd(lab, MASTER)
        stop_etcd(lab, MASTER)  # from here on the kubelet stand-in runs it, from its manifest
        lab.ssh(
            MASTER,
            f"mkdir -p {MANIFESTS}"
            f" && for p in etcd kube-apiserver; do echo 'kind: Pod' > {MANIFESTS}/$p.yaml; done",
        )
        lab.ssh(
            MASTER,
            f"cat > {RUNNER_PATH} && setsid -f sh {RUNNER_PATH} >/dev/null 2>&1 </dev/null",
            stdin=STATIC_POD_RUNNER.format(etcd=ETCD_COMMAND),
        )
        wait_until_listening(lab, MASTER, 2379)
        wait_until_listening(lab, MASTER, 6443)
        yield lab
    finally:
        stop_all = f"pkill -f '^sh {RUNNER_PATH}'; pkill -x etcd; pkill -f '^python3 -m http.server'; true"
        lab.ssh(MASTER, stop_all, check=False)
        host_lab.stop(host)


@pytest.fixture
def peer() -> Iterator[KubernetesApiPeer]:
    with KubernetesApiPeer() as server:
        yield server


def _etcdctl(lab: RolesLab, command: str) -> str:
    return lab.ssh(MASTER, f"{ETCD_CLIENT_ENV} /usr/local/bin/etcdctl {command}").strip()


@dataclass(frozen=True)
class Offsite:
    """The SFTP target: a folder of its own on another test host."""

    host: LabHost
    folder: str

    def ssh(self, command: str) -> str:
        return RolesLab(hosts={"sftp": self.host}, inventory=Path("unused"), work=Path("unused")).ssh(
            "sftp", command
        )

    def read(self, path: str) -> bytes:
        return subprocess.run(
            [*self.host.ssh_args(), f"cat {path}"], capture_output=True, timeout=30, check=True
        ).stdout

    def write(self, path: str, data: bytes) -> None:
        subprocess.run([*self.host.ssh_args(), f"cat > {path}"], input=data, capture_output=True, timeout=30,
                       check=True)  # fmt: skip


@pytest.fixture
def offsite(lab_hosts: list[LabHost]) -> Iterator[Offsite]:
    target = Offsite(host=lab_hosts[0], folder=f"/var/backups/kobot-{secrets.token_hex(4)}")
    yield target
    target.ssh(f"rm -rf {target.folder}")


@pytest.fixture
def runtime(
    redis_url: str,
    data_dir: Path,
    tmp_path: Path,
    master: RolesLab,
    offsite: Offsite,
    peer: KubernetesApiPeer,
) -> Iterator[Runtime]:
    """kobot as the site configures it: the real playbooks, SSH to the hosts, one SFTP target `offsite`;
    prod is a one-master cluster on the `master` host whose API is the peer."""
    sftp = offsite.host
    backups = BackupSettings(
        sftp={
            "offsite": SftpTarget(
                host=sftp.address,
                port=sftp.port,
                user=sftp.user,
                path=offsite.folder,
                key_file=sftp.key_path,
                known_hosts_file=sftp.known_hosts_path,
            )
        }
    )
    host = master.hosts[MASTER]
    rt = dispatching_runtime(
        redis_url=redis_url,
        data_dir=data_dir,
        policy=OPERATOR_ON_PROD_ADMIN_EVERYWHERE,
        policy_dir=tmp_path,
        playbooks_dir=PLAYBOOKS,
        plugins=[],
        ssh_user=host.user,
        ssh_key_file=host.key_path,
        ansible_extra_vars=SITE_VARS,
        backups=backups,
    )
    try:
        _cluster(rt, master=host, peer=peer)
        yield rt
    finally:
        rt.close()


def _cluster(runtime: Runtime, *, master: LabHost, peer: KubernetesApiPeer) -> None:
    runtime.clusters.save(
        ClusterRecord(
            name="prod",
            version="1.30.5",
            state=ClusterState.RUNNING,
            nodes=[NodeRecord(name=MASTER, role="master", address=master.address, state=NodeState.READY)],
            spec=ClusterShape(version="1.30.5", masters=1, workers=0),
        )
    )
    kubeconfig = peer.write_kubeconfig(runtime.settings.data_dir / "peer.kubeconfig")
    ClusterSecrets(redis=runtime.redis, secret=secret_key(runtime.settings)).put(
        cluster="prod", name=KUBECONFIG_SECRET, value=kubeconfig.read_bytes()
    )
    kubeconfig.unlink()
    peer.add_node(MASTER, role="master")


def _chat(runtime: Runtime) -> RecordingAdapter:
    adapter = runtime.adapters["slack"]
    assert isinstance(adapter, RecordingAdapter)
    return adapter


async def _say(runtime: Runtime, text: str, *, who: Identity = OPERATOR) -> OutgoingMessage:
    await Dispatcher(runtime=runtime).on_message(InboundMessage(identity=who, conversation=ROOM, text=text))
    return _chat(runtime).deliveries[-1].message


async def _approve(runtime: Runtime) -> None:
    card = next(d for d in reversed(_chat(runtime).deliveries) if d.message.kind is MessageKind.APPROVAL)
    button = next(b for b in card.message.buttons if b.label == "Approve")
    await Dispatcher(runtime=runtime).on_click(
        ButtonClick(
            identity=ADMIN,
            conversation=ROOM,
            action_id=button.action_id,
            value=button.value,
            message=card.ref,
        )
    )


async def _run_jobs(runtime: Runtime) -> list[JobRecord]:
    await asyncio.to_thread(run_queue, job_service(runtime.settings, runtime.redis))
    return runtime.jobs.records.recent(limit=10)


def _played(runtime: Runtime, job_id: str) -> list[tuple[str, str]]:
    return [
        (e.task or "", e.host or "")
        for e in read_job_events(runtime.redis, job_id)
        if e.type in (JobEventType.TASK_CHANGED, JobEventType.TASK_OK)
    ]


async def test_backup_to_sftp_then_restore_fetches_and_checks_before_any_stop_on_test_hosts(
    runtime: Runtime, master: RolesLab, offsite: Offsite, data_dir: Path
) -> None:
    folder = offsite.folder
    _etcdctl(master, "put /registry/kobot/in-backup yes")

    # --- backup prod target=offsite: job → etcd_backup.yml on the master → upload to the SFTP host
    await Dispatcher(runtime=runtime).on_message(
        InboundMessage(identity=OPERATOR, conversation=ROOM, text="backup prod target=offsite")
    )
    [backup_job] = await _run_jobs(runtime)
    assert backup_job.spec.kind == JobKind.ETCD_BACKUP.value
    assert backup_job.state is JobState.SUCCEEDED, (backup_job.error, backup_job.failed_host)
    played = _played(runtime, backup_job.job_id)
    assert ("Take the snapshot", MASTER) in played, "the snapshot came from the playbook on the master"
    assert ("Fetch the snapshot to kobot", MASTER) in played
    [backup] = etcd.list_backups(redis=runtime.redis, cluster="prod")
    assert (backup.target, backup.key, backup.job_id) == (
        "offsite",
        f"prod/{backup.id}.db",
        backup_job.job_id,
    )
    assert backup.total_keys is not None and backup.total_keys >= 1, "a real etcd snapshot"
    remote = f"{folder}/prod/{backup.id}.db"
    assert offsite.ssh(f"sha256sum {remote} | cut -d' ' -f1").strip() == backup.sha256
    assert offsite.ssh(f"stat -c %a {remote}").strip() == "600"
    assert offsite.ssh(f"ls -A {folder}/prod").split() == [f"{backup.id}.db"], "no partial left"
    local = etcd.snapshot_path(data_dir=data_dir, cluster="prod", backup_id=backup.id)
    assert list(local.parent.iterdir()) == [], "once off-host, kobot's disk keeps no copy"

    # --- list backups prod: where it lives
    listed = await _say(runtime, "list backups prod")
    assert f"{backup.id}  " in (listed.body or "")
    assert f"at offsite  sha256 {backup.sha256[:16]}" in (listed.body or "")

    # --- a corrupted remote copy: refused by the checksum before anything is stopped
    _etcdctl(master, "put /registry/kobot/after-backup lost-on-restore")
    good = offsite.read(remote)
    assert hashlib.sha256(good).hexdigest() == backup.sha256
    offsite.ssh(f"printf 'X' | dd of={remote} bs=1 seek=100 conv=notrunc status=none")
    await _say(runtime, f"restore prod from {backup.id}")
    await _approve(runtime)
    refused = next(r for r in await _run_jobs(runtime) if r.spec.kind == JobKind.ETCD_RESTORE.value)
    assert refused.state is JobState.FAILED
    assert (
        refused.summary == f"backup {backup.id} does not match its recorded checksum; it will not be restored"
    )
    assert refused.error == f"sha256 differs for {backup.id}.db"
    steps = {s.name: s.state for s in refused.steps}
    assert steps["verify"] is StepState.FAILED and steps["restore"] is StepState.PENDING
    assert _played(runtime, refused.job_id) == [], "no playbook ran, so nothing was stopped"
    assert master.ssh(MASTER, f"ls {MANIFESTS}").split() == ["etcd.yaml", "kube-apiserver.yaml"]
    assert _etcdctl(master, "get --print-value-only /registry/kobot/after-backup") == "lost-on-restore"
    assert not local.exists(), "the corrupted copy is not kept as the backup"

    # --- the good copy back at the target: fetched, checked, restored by etcd_restore.yml
    offsite.write(remote, good)
    await _say(runtime, f"restore prod from {backup.id}")
    await _approve(runtime)
    restored = next(
        r
        for r in await _run_jobs(runtime)
        if r.spec.kind == JobKind.ETCD_RESTORE.value and r.job_id != refused.job_id
    )
    assert restored.state is JobState.SUCCEEDED, (restored.error, restored.failed_task)
    order = _played(runtime, restored.job_id)
    stopped = order.index(("Wait until the API server and etcd have stopped", MASTER))
    assert stopped < order.index(("Restore the snapshot into a new data directory", MASTER))
    assert _etcdctl(master, "get --print-value-only /registry/kobot/in-backup") == "yes"
    assert _etcdctl(master, "get --print-value-only /registry/kobot/after-backup") == ""
    assert etcd.file_sha256(local) == backup.sha256, "the fetched copy is the recorded bytes"


async def test_scheduled_backups_at_sftp_keep_the_newest_and_touch_nothing_else_on_test_hosts(
    runtime: Runtime, offsite: Offsite
) -> None:
    scheduled = await _say(runtime, "backup prod every hour at 00:00 target=offsite keep 1")
    assert scheduled.title == "Backups of prod scheduled"
    schedule = ScheduleStore(runtime.redis).get("prod")
    assert schedule is not None
    service = job_service(runtime.settings, runtime.redis)
    folder = f"{offsite.folder}/prod"

    [first] = run_due(service=service, now=schedule.next_run_at)
    await _run_jobs(runtime)
    # a backup taken by hand and a file kobot never wrote, next to the scheduled ones
    await _say(runtime, "backup prod target=offsite")
    await _run_jobs(runtime)
    offsite.ssh(f"echo theirs > {folder}/someone-elses.db")
    [second] = run_due(service=service, now=schedule.next_run_at + timedelta(hours=1))
    await _run_jobs(runtime)

    for job_id in (first, second):
        record = runtime.jobs.records.require(job_id)
        assert record.state is JobState.SUCCEEDED, (record.error, record.failed_task)
    backups = etcd.list_backups(redis=runtime.redis, cluster="prod")
    [kept] = [b for b in backups if b.scheduled]
    [by_hand] = [b for b in backups if not b.scheduled]
    assert kept.job_id == second, "the newest scheduled backup is kept, the older one deleted"
    assert sorted(offsite.ssh(f"ls -A {folder}").split()) == sorted(
        [f"{kept.id}.db", f"{by_hand.id}.db", "someone-elses.db"]
    ), "retention deleted only the scheduled backup it recorded"
