"""Certificate renewal on the SSH test hosts (Debian 12 roots running sshd, no kubeadm, no kubelet).

- cluster_cert_renew.yml in `--check` mode, where kubeadm cannot run: the master whose certificate
  expires soon is renewed and its static pods restarted, the other is left alone, one master at a
  time; the certificates are read back to kobot and their expiry parsed.
- the `renew certificates on prod` job end to end (chat line, approval, real RQ worker, the real
  playbook over SSH, the Kubernetes API peer): a real run on a master whose certificates are a year
  away renews nothing, so needs no kubeadm, and its final message shows the expiry read back.

The certificates are real X.509 ones made by the tests (`cryptography`), laid out as kubeadm does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from bot.dispatcher import Dispatcher
from bot.runtime import Runtime
from kobot.cluster_spec import ClusterShape
from kobot.clusters import ClusterRecord, ClusterState, NodeRecord, NodeState
from kobot.conversations import ButtonClick, InboundMessage
from kobot.job_records import JobEventType, JobKind, JobRecord, JobState
from kobot.messages import MessageKind
from kobot.store import secret_key
from tests.bot.recording_adapter import RecordingAdapter
from tests.certs.certificates import KUBEADM_LEAVES, write_pki
from tests.hosts.lab import HostLab, LabHost
from tests.peers.kubernetes import KubernetesApiPeer
from tests.playbooks.roles_lab import (
    PLAYBOOKS,
    WITHOUT_HOST_FEATURES,
    RolesLab,
    open_roles_lab,
    wait_until_listening,
)
from tests.support.dispatching import (
    ADMIN,
    OPERATOR,
    OPERATOR_ON_PROD_ADMIN_EVERYWHERE,
    ROOM,
    dispatching_runtime,
)
from tests.workers.jobkit import job_service, run_queue
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets
from workers.day2_ops.cert_renew_expiry import expiry_lines, read_report
from workers.events import read_job_events

PKI = "/etc/kubernetes/pki"
MANIFESTS = "/etc/kubernetes/manifests"
STATIC_PODS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
CHECKED = ("apiserver.crt", "front-proxy-client.crt", "etcd/server.crt")
"""What the check-mode run looks at: a few of kubeadm's leaves keep it short on a loaded machine."""
RENEW_TASK = "Renew every kubeadm certificate (validity from the cluster configuration, one year)"


def _install_pki(lab: RolesLab, name: str, *, expiries: dict[str, datetime], local: Path) -> None:
    """kubeadm's leaf certificates and the control plane's static pod manifests on one test host."""
    write_pki(local, expiries=expiries)
    lab.ssh(name, f"mkdir -p {PKI}/etcd {MANIFESTS}")
    for leaf in expiries:
        lab.copy_in(name, source=local / leaf, dest=f"{PKI}/{leaf}", mode="0644")
    lab.ssh(name, " && ".join(f"echo 'kind: Pod' > {MANIFESTS}/{pod}.yaml" for pod in STATIC_PODS))
    # kubeadm's admin kubeconfig (a placeholder: nothing here reads it) and root's kubectl directory
    lab.ssh(name, "echo 'kind: Config' > /etc/kubernetes/admin.conf && mkdir -p /root/.kube")


def _a_year_away(*, except_for: dict[str, datetime] | None = None) -> dict[str, datetime]:
    year = datetime.now(UTC) + timedelta(days=365)
    return {leaf: year for leaf in KUBEADM_LEAVES} | (except_for or {})


@pytest.fixture
def masters(host_lab: HostLab, tmp_path: Path) -> Iterator[RolesLab]:
    """Two masters of their own (etcd on master-1 only: an even etcd count is refused)."""
    with open_roles_lab(host_lab, tmp_path, names=("master-1", "master-2"), offline_registry=None) as lab:
        yield lab


def test_renewal_check_mode_on_test_hosts_renews_only_the_expiring_master_one_at_a_time(
    masters: RolesLab, tmp_path: Path
) -> None:
    soon = datetime.now(UTC) + timedelta(days=5, hours=1)
    _install_pki(masters, "master-1", expiries=_a_year_away(), local=tmp_path / "pki-1")
    _install_pki(
        masters,
        "master-2",
        expiries=_a_year_away(except_for={"apiserver.crt": soon}),
        local=tmp_path / "pki-2",
    )
    report = tmp_path / "report"

    result, events = masters.run(
        "cluster_cert_renew.yml",
        extravars={
            **WITHOUT_HOST_FEATURES,
            "cert_renew_report_dir": str(report),
            "cert_renew_files": [f"{PKI}/{leaf}" for leaf in CHECKED],
        },
        check_mode=True,
    )

    assert result.succeeded, (result.failed_task, result.failed_host, result.error)
    per_host = [e for e in events if e.host and e.type is not JobEventType.TASK_STARTED]
    first_of_2 = next(i for i, e in enumerate(per_host) if e.host == "master-2")
    assert all(e.host == "master-2" for e in per_host[first_of_2:]), "master-1 is done before master-2 starts"
    changed = {(e.host, e.task) for e in events if e.type is JobEventType.TASK_CHANGED}
    for pod in STATIC_PODS:
        assert ("master-2", f"Stop {pod}") in changed, f"master-2's {pod} restarts on the new certificates"
        assert ("master-1", f"Stop {pod}") not in changed, "nothing of master-1 expires soon"
    skipped = {(e.host, e.task) for e in events if e.type is JobEventType.TASK_SKIPPED}
    # kubeadm is skipped on both: on master-2 by check mode, on master-1 because nothing is due
    assert {("master-1", RENEW_TASK), ("master-2", RENEW_TASK)} <= skipped
    ran = {(e.host, e.task) for e in events if e.type in (JobEventType.TASK_OK, JobEventType.TASK_CHANGED)}
    assert ("master-2", "Give root the renewed admin kubeconfig") in ran
    assert ("master-1", "Give root the renewed admin kubeconfig") in skipped
    for name in ("master-1", "master-2"):
        assert masters.ssh(name, f"ls {MANIFESTS}").split() == [f"{pod}.yaml" for pod in sorted(STATIC_PODS)]
        assert masters.ssh(name, "ls -d /etc/kubernetes/manifests-held 2>/dev/null; true") == ""

    expiries = read_report(report)
    assert {(e.node, e.file) for e in expiries} == {
        (node, Path(leaf).name) for node in ("master-1", "master-2") for leaf in CHECKED
    }
    [line_1, line_2] = expiry_lines(expiries)
    assert line_1.startswith("master-1: earliest ") and "(364 days left)" in line_1
    assert line_2 == f"master-2: earliest apiserver.crt {soon:%Y-%m-%d} (5 days left)"


# --- the job end to end ---------------------------------------------------------------------------------
MASTER = "prod-master-1"


@pytest.fixture
def master_lab(host_lab: HostLab, tmp_path: Path) -> Iterator[RolesLab]:
    """prod's only master, its certificates a year away."""
    [host] = host_lab.start(count=1)
    try:
        lab = RolesLab(hosts={MASTER: host}, inventory=tmp_path / "unused.yml", work=tmp_path)
        _install_pki(lab, MASTER, expiries=_a_year_away(), local=tmp_path / "pki")
        yield lab
    finally:
        host_lab.stop(host)


@pytest.fixture
def master(master_lab: RolesLab) -> LabHost:
    return master_lab.hosts[MASTER]


@pytest.fixture
def peer() -> Iterator[KubernetesApiPeer]:
    with KubernetesApiPeer() as server:
        yield server


@pytest.fixture
def runtime(
    redis_url: str, data_dir: Path, tmp_path: Path, master: LabHost, peer: KubernetesApiPeer
) -> Iterator[Runtime]:
    rt = dispatching_runtime(
        redis_url=redis_url,
        data_dir=data_dir,
        policy=OPERATOR_ON_PROD_ADMIN_EVERYWHERE,
        policy_dir=tmp_path,
        playbooks_dir=PLAYBOOKS,
        plugins=[],
        ssh_user=master.user,
        ssh_key_file=master.key_path,
        ansible_extra_vars={
            **WITHOUT_HOST_FEATURES,
            # no metrics-server here, and the stand-in static pods restart in well under a second
            "metrics_server_enabled": False,
            "cert_renew_pod_timeout_seconds": 30,
        },
    )
    try:
        rt.clusters.save(
            ClusterRecord(
                name="prod",
                version="1.30.5",
                state=ClusterState.RUNNING,
                nodes=[NodeRecord(name=MASTER, role="master", address=master.address, state=NodeState.READY)],
                spec=ClusterShape(version="1.30.5", masters=1, workers=0),
            )
        )
        kubeconfig = peer.write_kubeconfig(data_dir / "peer.kubeconfig")
        ClusterSecrets(redis=rt.redis, secret=secret_key(rt.settings)).put(
            cluster="prod", name=KUBECONFIG_SECRET, value=kubeconfig.read_bytes()
        )
        kubeconfig.unlink()
        peer.add_node(MASTER, role="master")
        yield rt
    finally:
        rt.close()


async def _renew_approved_and_run(runtime: Runtime) -> JobRecord:
    """`renew certificates on prod` from the operator, approved by the admin, run by a real RQ worker."""
    chat = runtime.adapters["slack"]
    assert isinstance(chat, RecordingAdapter)
    await Dispatcher(runtime=runtime).on_message(
        InboundMessage(identity=OPERATOR, conversation=ROOM, text="renew certificates on prod")
    )
    card = next(d for d in reversed(chat.deliveries) if d.message.kind is MessageKind.APPROVAL)
    assert f"one master at a time: {MASTER}" in card.message.to_text()
    approve = next(b for b in card.message.buttons if b.label == "Approve")
    await Dispatcher(runtime=runtime).on_click(
        ButtonClick(
            identity=ADMIN,
            conversation=ROOM,
            action_id=approve.action_id,
            value=approve.value,
            message=card.ref,
        )
    )
    await asyncio.to_thread(run_queue, job_service(runtime.settings, runtime.redis))
    [job] = runtime.jobs.records.recent(limit=5)
    return job


async def test_renew_certificates_job_on_test_hosts_reads_expiry_back_and_renews_nothing_not_due(
    runtime: Runtime,
) -> None:
    secrets = ClusterSecrets(redis=runtime.redis, secret=secret_key(runtime.settings))
    kubeconfig_before = secrets.get(cluster="prod", name=KUBECONFIG_SECRET)

    job = await _renew_approved_and_run(runtime)

    assert job.spec.kind == JobKind.CERTS_RENEW.value
    assert job.state is JobState.SUCCEEDED, (job.summary, job.error, job.failed_task)
    assert job.summary is not None
    assert f"certificates: {MASTER}: earliest " in job.summary and "(364 days left)" in job.summary
    assert "kubeconfig refreshed" not in job.summary
    events = read_job_events(runtime.redis, job.job_id)
    skipped = {(e.host, e.task) for e in events if e.type is JobEventType.TASK_SKIPPED}
    assert (MASTER, RENEW_TASK) in skipped, "a year away: nothing renewed, no kubeadm needed"
    copied = [
        e
        for e in events
        if e.type is JobEventType.TASK_CHANGED and e.task == "Read the certificates back to kobot"
    ]
    assert copied, "the certificates were read back from the master"
    assert secrets.get(cluster="prod", name=KUBECONFIG_SECRET) == kubeconfig_before
    record = runtime.clusters.require("prod")
    assert record.state is ClusterState.RUNNING
    assert (record.history[-1].kind, record.history[-1].outcome) == (JobKind.CERTS_RENEW.value, "succeeded")


STATIC_POD_PORTS = {
    "etcd": 2379,
    "kube-apiserver": 6443,
    "kube-controller-manager": 10257,
    "kube-scheduler": 10259,
}
KUBELET_STAND_IN = """
while true; do
  for pod in {pods}; do
    port=${{pod#*:}}
    if [ -f /etc/kubernetes/manifests/${{pod%%:*}}.yaml ]; then
      pgrep -f "^python3 -m http.server $port" >/dev/null ||
        setsid -f python3 -m http.server $port --bind 127.0.0.1 >/dev/null 2>&1
    else
      pkill -f "^python3 -m http.server $port"
    fi
  done
  sleep 0.2
done
""".format(pods=" ".join(f"{pod}:{port}" for pod, port in STATIC_POD_PORTS.items()))
"""What the kubelet does with the control plane's static pods, as far as a renewal sees it: a manifest in
place runs a listener on the pod's port, a manifest moved away stops it."""
KUBEADM_STAND_IN = """#!/bin/sh
# `kubeadm certs renew all` as far as the job sees it: renewed certificates and admin.conf in place
[ "$*" = "certs renew all" ] || exit 64
cp -r /root/renewed/pki/. /etc/kubernetes/pki/ && cp /root/renewed/admin.conf /etc/kubernetes/admin.conf
"""
KUBECTL_STAND_IN = """#!/bin/sh
# `kubectl get csr --output json`: no kubelet asks for a serving certificate here
echo '{"items": []}'
"""


def _listener_pids(lab: RolesLab) -> dict[str, str]:
    return {
        pod: lab.ssh(MASTER, f"pgrep -f '^python3 -m http.server {port}'").strip()
        for pod, port in STATIC_POD_PORTS.items()
    }


async def test_renew_certificates_job_on_test_hosts_renews_restarts_and_refreshes_kobots_kubeconfig(
    runtime: Runtime, master_lab: RolesLab, peer: KubernetesApiPeer, tmp_path: Path
) -> None:
    """A real run, kubeadm and the kubelet played by stand-ins (no real ones can run in a test host):
    apiserver.crt expires in 5 days, so the master is renewed, its four static pods restart one after
    another, the new admin.conf replaces kobot's and the expiry read back is a year away."""
    lab = master_lab
    soon = {"apiserver.crt": datetime.now(UTC) + timedelta(days=5)}
    _install_pki(lab, MASTER, expiries=_a_year_away(except_for=soon), local=tmp_path / "expiring")
    write_pki(tmp_path / "renewed" / "pki", expiries=_a_year_away())
    lab.ssh(MASTER, "mkdir -p /root/renewed/pki/etcd")
    for leaf in KUBEADM_LEAVES:
        lab.copy_in(
            MASTER, source=tmp_path / "renewed" / "pki" / leaf, dest=f"/root/renewed/pki/{leaf}", mode="0644"
        )
    renewed = yaml.safe_load(peer.write_kubeconfig(tmp_path / "renewed.conf").read_text())
    renewed["contexts"][0]["name"] = renewed["current-context"] = "kubernetes-admin@prod"
    renewed_bytes = yaml.safe_dump(renewed).encode()
    (tmp_path / "renewed.conf").write_bytes(renewed_bytes)
    lab.copy_in(MASTER, source=tmp_path / "renewed.conf", dest="/root/renewed/admin.conf", mode="0600")
    for name, script in (("kubeadm", KUBEADM_STAND_IN), ("kubectl", KUBECTL_STAND_IN)):
        lab.ssh(MASTER, f"cat > /usr/local/bin/{name} && chmod 0755 /usr/local/bin/{name}", stdin=script)
    lab.ssh(MASTER, "cat > /root/kubelet.sh && setsid -f sh /root/kubelet.sh >/dev/null 2>&1 </dev/null",
            stdin=KUBELET_STAND_IN)  # fmt: skip
    for port in STATIC_POD_PORTS.values():
        wait_until_listening(lab, MASTER, port)
    before = _listener_pids(lab)

    try:
        job = await _renew_approved_and_run(runtime)
        after = _listener_pids(lab)
    finally:
        lab.ssh(
            MASTER, "pkill -f '^sh /root/kubelet.sh'; pkill -f '^python3 -m http.server'; true", check=False
        )

    assert job.state is JobState.SUCCEEDED, (job.summary, job.error, job.failed_task)
    assert job.summary is not None
    assert f"certificates: {MASTER}: earliest " in job.summary and "(364 days left)" in job.summary
    assert job.summary.endswith("; kobot's admin kubeconfig refreshed")
    assert all(after[pod] and after[pod] != before[pod] for pod in STATIC_POD_PORTS), (before, after)
    events = read_job_events(runtime.redis, job.job_id)
    played = [
        e.task for e in events if e.type in (JobEventType.TASK_CHANGED, JobEventType.TASK_OK) and e.host
    ]
    stops = [played.index(f"Stop {pod}") for pod in STATIC_PODS]
    starts = [played.index(f"Wait until it listens again, {pod}") for pod in STATIC_PODS]
    assert stops[0] < starts[0] < stops[1] < starts[1] < stops[2] < starts[2] < stops[3] < starts[3], (
        "one static pod at a time, each back before the next stops"
    )
    secrets = ClusterSecrets(redis=runtime.redis, secret=secret_key(runtime.settings))
    assert secrets.get(cluster="prod", name=KUBECONFIG_SECRET) == renewed_bytes
    assert not list(Path(runtime.settings.job_artifacts_dir()).rglob("admin.conf.renewed"))
    assert lab.ssh(MASTER, "ls /etc/kubernetes/manifests-held").split() == [], "every manifest is back"
