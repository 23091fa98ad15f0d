"""cis_scan.yml on the real SSH test hosts (Debian 12 roots in network namespaces), and `scan prod`
from Slack to a finished job that runs it there.

kube-bench itself cannot judge these hosts (no kubelet, no API server), so the release archive the role
downloads holds a stand-in: a shell script in kube-bench's place that records the arguments it got and
writes the fixture report (tests/fixtures/kube_bench) its `--targets` call for, as kube-bench's
`--json --outputfile` does. Everything around it is real: the archive and its checksums file served
from the offline files URL (an http.server inside each host, on the host's own loopback), the
download checked against the checksums, the unpack, the run, the fetch back to kobot over SSH.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis import Redis

from bot.app import create_app
from bot.chat.slack.defaults import EVENTS_PATH
from kobot.cluster_spec import ClusterShape, OfflineRepository
from kobot.clusters import ClusterRecord, ClusterState, ClusterStore, NodeRecord, NodeState
from kobot.job_records import JobEventType
from kobot.settings import Settings
from tests.compliance.reports import MASTER, MASTER_HARDENED, NODE
from tests.hosts.lab import HostLab
from tests.peers.slack import PeerMessage, SlackPeer, event_callback, mention_event, signed_headers
from tests.playbooks.roles_lab import PLAYBOOKS, RolesLab, wait_until_listening
from tests.support.asgi import serve
from tests.support.network import free_port
from tests.support.slack import settings_for
from tests.support.waiting import wait_for
from workers.compliance.kube_bench import KUBE_BENCH_VERSION
from workers.compliance.results import ScanStore
from workers.inventory import render_inventory, write_inventory

MASTER_NODE, WORKER_NODE = "prod-master-1", "prod-worker-1"
FILES_PORT = 8089
"""The offline files server's port on each host's own loopback."""
FILES_ROOT = "/srv/kobot-files"
INSTALL_DIR = f"/usr/local/lib/kobot/kube-bench-v{KUBE_BENCH_VERSION}"
ARCHIVE = f"kube-bench_{KUBE_BENCH_VERSION}_linux_amd64.tar.gz"
SCAN_SECONDS = 180.0
"""Longest a scan job (inventory, download, run and fetch on two hosts) may take here."""

STAND_IN = """#!/bin/sh
# kube-bench stand-in: records its arguments, writes the fixture report its targets call for
here=$(dirname "$0")
printf '%s\\n' "$@" > "$here/last-args"
targets="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --targets) targets=$2; shift 2 ;;
    --outputfile) out=$2; shift 2 ;;
    *) shift ;;
  esac
done
case ",$targets," in
  *,master,*) report=master.json ;;
  *) report=node.json ;;
esac
cat "$here/reports/$report" > "$out"
"""
POLICY = """
version: 1
bindings:
  - role: operator
    subjects: ["slack:U0ALICE"]
"""


def _archive() -> bytes:
    """kube-bench's release layout (binary and cfg/ at the top), with the stand-in and its reports."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data, mode in (
            ("kube-bench", STAND_IN.encode(), 0o755),
            ("cfg/config.yaml", b"---\nmaster:\n  components: []\n", 0o644),
            ("reports/master.json", MASTER.read_bytes(), 0o644),
            ("reports/node.json", NODE.read_bytes(), 0o644),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def lab(host_lab: HostLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RolesLab]:
    """A master and a worker of their own; each serves the offline files to itself."""
    started = host_lab.start(count=2)
    work = tmp_path_factory.mktemp("cis-lab")
    try:
        hosts = dict(zip((MASTER_NODE, WORKER_NODE), started, strict=True))
        archive = _archive()
        (work / ARCHIVE).write_bytes(archive)
        checksums = work / "checksums.txt"
        checksums.write_text(
            f"{hashlib.sha256(archive).hexdigest()}  {ARCHIVE}\n"
            f"{'0' * 64}  kube-bench_{KUBE_BENCH_VERSION}_linux_arm64.tar.gz\n"
        )
        folder = f"{FILES_ROOT}/kube-bench/v{KUBE_BENCH_VERSION}"
        inventory = render_inventory(
            nodes=[(MASTER_NODE, "master", started[0].address), (WORKER_NODE, "worker", started[1].address)],
            ssh_user=started[0].user,
            ssh_key_path=started[0].key_path,
            known_hosts_path=started[0].known_hosts_path,
            cluster_vars={"cluster_name": "prod", "kube_version": "1.31.4", "offline_files_url": files_url()},
        )
        lab = RolesLab(hosts=hosts, inventory=write_inventory(work / "inventory.yml", inventory), work=work)
        for name in hosts:
            lab.ssh(name, f"mkdir -p {folder}")
            lab.copy_in(name, source=work / ARCHIVE, dest=f"{folder}/{ARCHIVE}", mode="0644")
            lab.copy_in(
                name,
                source=checksums,
                dest=f"{folder}/kube-bench_{KUBE_BENCH_VERSION}_checksums.txt",
                mode="0644",
            )
            lab.ssh(
                name,
                f"setsid -f python3 -m http.server {FILES_PORT} --bind 127.0.0.1 --directory {FILES_ROOT}"
                " >/dev/null 2>&1 </dev/null",
            )
            wait_until_listening(lab, name, FILES_PORT)
        yield lab
    finally:
        for host in started:
            host_lab.stop(host)


def files_url() -> str:
    return f"http://127.0.0.1:{FILES_PORT}"


def _extravars(dest: Path, job_id: str = "7") -> dict[str, Any]:
    return {"cis_scan_dest": str(dest), "kube_bench_version": KUBE_BENCH_VERSION, "kobot_job_id": job_id}


def test_cis_scan_check_mode_on_test_hosts_runs_nothing_and_fetches_nothing(lab: RolesLab) -> None:
    dest = lab.work / "check-mode"
    dest.mkdir()
    result, events = lab.run("cis_scan.yml", extravars=_extravars(dest), check_mode=True)
    assert result.succeeded, (result.failed_task, result.failed_host, result.error)
    ran = {(e.host, e.task) for e in events if e.type in (JobEventType.TASK_OK, JobEventType.TASK_CHANGED)}
    would_change = {(e.host, e.task) for e in events if e.type is JobEventType.TASK_CHANGED}
    skipped = {(e.host, e.task) for e in events if e.type is JobEventType.TASK_SKIPPED}
    for node in (MASTER_NODE, WORKER_NODE):
        assert (node, "Choose kube-bench's targets for this node") in ran
        assert (node, "Create the kube-bench directory") in would_change
        assert (node, "Run kube-bench") in skipped
        assert (node, "Fetch the report to kobot") in skipped
    assert list(dest.iterdir()) == []
    assert lab.ssh(MASTER_NODE, f"test -e {INSTALL_DIR}/kube-bench && echo yes || echo no").strip() == "no"


BUILD_TASK = "Require a kube-bench build for this node's architecture"


def test_cis_scan_on_test_hosts_picks_kube_bench_build_from_node_architecture(lab: RolesLab) -> None:
    """The gathered architecture picks the archive; an arm64 node (the fact overridden here, as these
    hosts are x86_64) gets the arm64 build, and an architecture with no build stops the scan by name."""
    dest = lab.work / "architecture"
    dest.mkdir()
    gathered, _ = lab.run("cis_scan.yml", extravars=_extravars(dest), check_mode=True)
    assert gathered.succeeded, (gathered.failed_task, gathered.failed_host, gathered.error)
    assert _builds_chosen(lab) == {MASTER_NODE: ARCHIVE, WORKER_NODE: ARCHIVE}

    arm = {**_extravars(dest), "ansible_architecture": "aarch64"}
    arm_run, _ = lab.run("cis_scan.yml", extravars=arm, check_mode=True)
    assert arm_run.succeeded, (arm_run.failed_task, arm_run.failed_host, arm_run.error)
    arm64 = f"kube-bench_{KUBE_BENCH_VERSION}_linux_arm64.tar.gz"
    assert _builds_chosen(lab) == {MASTER_NODE: arm64, WORKER_NODE: arm64}

    riscv = {**_extravars(dest), "ansible_architecture": "riscv64"}
    refused, _ = lab.run("cis_scan.yml", extravars=riscv, check_mode=True)
    assert not refused.succeeded and refused.failed_task == BUILD_TASK
    assert "no build for this node's architecture riscv64; builds exist for: x86_64, aarch64" in (
        refused.error or ""
    )
    assert list(dest.iterdir()) == []


def _builds_chosen(lab: RolesLab) -> dict[str, str]:
    """Host -> the archive the last run's build check named, from that run's ansible-runner stdout."""
    [stdout] = (lab.work / "jobs" / f"lab{lab.runs}").glob("*/artifacts/*/stdout")
    return {
        m["host"]: m["archive"]
        for m in re.finditer(
            r'ok: \[(?P<host>[^\]]+)\] => \{\s*"changed": false,\s*'
            r'"msg": "kube-bench build (?P<archive>[^"]+)"',
            stdout.read_text(),
        )
    }


def test_cis_scan_with_stand_in_kube_bench_on_test_hosts_fetches_each_report_idempotent(
    lab: RolesLab,
) -> None:
    dest = lab.work / "reports"
    dest.mkdir()
    first, _ = lab.run("cis_scan.yml", extravars=_extravars(dest))
    assert first.succeeded, (first.failed_task, first.failed_host, first.error)
    assert (dest / f"{MASTER_NODE}.json").read_bytes() == MASTER.read_bytes()
    assert (dest / f"{WORKER_NODE}.json").read_bytes() == NODE.read_bytes()
    master_args = lab.ssh(MASTER_NODE, f"cat {INSTALL_DIR}/last-args").split("\n")
    assert master_args[:5] == ["run", "--targets", "master,etcd,controlplane,policies", "--version", "1.31"]
    assert f"{INSTALL_DIR}/cfg" in master_args and "--json" in master_args
    worker_args = lab.ssh(WORKER_NODE, f"cat {INSTALL_DIR}/last-args").split("\n")
    assert worker_args[:3] == ["run", "--targets", "node"]
    assert master_args[master_args.index("--outputfile") + 1] == "/var/lib/kobot/cis/kube-bench-7.json"
    # the report is the job's own and goes once fetched: no later run can fetch it as its own
    assert lab.ssh(WORKER_NODE, "stat -c %a /var/lib/kobot/cis").strip() == "700"
    assert lab.ssh(WORKER_NODE, "ls -A /var/lib/kobot/cis").strip() == ""
    again, more = lab.run("cis_scan.yml", extravars=_extravars(dest, job_id="8"))
    assert again.succeeded and again.changed == 0, [
        (e.host, e.task) for e in more if e.type is JobEventType.TASK_CHANGED
    ]


# --- scan prod from Slack -------------------------------------------------------------------------------
@dataclass
class Kobot:
    url: str
    slack: SlackPeer
    signing_secret: str
    redis: Redis

    def say(self, text: str) -> dict[str, Any]:
        event = mention_event(text=f"<@U0KOBOT> {text}", user="U0ALICE", channel="C0OPS")
        body = json.dumps(event_callback(event)).encode()
        headers = {
            "Content-Type": "application/json",
            **signed_headers(signing_secret=self.signing_secret, body=body),
        }
        response = httpx.post(f"{self.url}{EVENTS_PATH}", content=body, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        return event

    def answer(self, text: str, *, final: bool = False) -> str:
        """What the thread of `text` shows at the end: a reply, or a job's message once it has ended."""
        event = self.say(text)

        def ended() -> list[PeerMessage]:
            thread = [m for m in self.slack.posted() if m.thread_ts == event["ts"]]
            if final:
                return [m for m in thread if "succeeded in" in shown(m) or "failed at" in shown(m)]
            return thread

        [message] = wait_for(ended, timeout=SCAN_SECONDS, what=f"the end of {text!r}")
        return shown(message)


def shown(message: PeerMessage) -> str:
    latest = message.edits[-1] if message.edits else {"text": message.text, "blocks": message.blocks}
    return json.dumps(latest, ensure_ascii=False)


@pytest.fixture
def kobot(lab: RolesLab, redis_url: str, redis: Redis, data_dir: Path) -> Iterator[Kobot]:
    signing_secret = secrets.token_hex(16)
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY)
    master, worker = lab.hosts[MASTER_NODE], lab.hosts[WORKER_NODE]
    with SlackPeer(bot_token=f"xoxb-{secrets.token_hex(12)}") as slack:
        settings = Settings(
            policy_file=policy,
            redis_url=SecretStr(redis_url),
            data_dir=data_dir,
            slack=settings_for(slack, signing_secret),
            progress_edit_interval=0,
            playbooks_dir=PLAYBOOKS,
            ssh_user=master.user,
            ssh_key_file=master.key_path,
        )
        offline = OfflineRepository(
            package_repo_url=f"{files_url()}/packages",
            image_registry="registry.prod.test:5000",
            files_url=files_url(),
        )
        ClusterStore(redis).save(
            ClusterRecord(
                name="prod",
                version="1.31.4",
                state=ClusterState.RUNNING,
                nodes=[
                    NodeRecord(
                        name=MASTER_NODE, role="master", address=master.address, state=NodeState.READY
                    ),
                    NodeRecord(
                        name=WORKER_NODE, role="worker", address=worker.address, state=NodeState.READY
                    ),
                ],
                spec=ClusterShape(version="1.31.4", masters=1, workers=1, offline_repo=offline),
            )
        )
        with serve(create_app(settings), port=free_port()) as url:
            yield Kobot(url=url, slack=slack, signing_secret=signing_secret, redis=redis)


def test_scan_prod_from_slack_peer_runs_stand_in_kube_bench_and_shows_what_changed_on_test_hosts(
    kobot: Kobot, lab: RolesLab
) -> None:
    first = kobot.answer("scan prod", final=True)
    assert "succeeded in" in first, first
    assert "CIS scan: 100 pass, 5 fail, 28 warn, 0 info on 2 node(s)" in first
    assert "First scan of this cluster" in first
    [first_id] = ScanStore(kobot.redis).ids("prod")
    assert f"show scan prod {first_id}" in first

    card = kobot.answer("show scan prod")
    assert f"CIS scan {first_id} of prod" in card
    assert "1.2 API Server [master]: " in card
    assert "• 4.2.6 Ensure that the --make-iptables-util-chains argument is set to true" in card
    assert "fix: " in card

    # the master is hardened a little (and a new failure slips in): the next scan says exactly that
    lab.copy_in(MASTER_NODE, source=MASTER_HARDENED, dest=f"{INSTALL_DIR}/reports/master.json", mode="0644")
    second = kobot.answer("安全扫描 prod", final=True)
    assert "succeeded in" in second, second
    assert f"Since scan {first_id}:" in second
    assert "newly failing 1.2.15 on prod-master-1" in second
    assert "fixed 1.1.12 on prod-master-1" in second and "fixed 1.2.16 on prod-master-1" in second
    listed = kobot.answer("list scans prod")
    assert "(+1 failing, 2 fixed)" in listed and "(first)" in listed

    # a report that is not kube-bench's JSON fails the job at the step that reads it, naming the node
    lab.ssh(WORKER_NODE, f"printf 'kube-bench: panic' > {INSTALL_DIR}/reports/node.json")
    failed = kobot.answer("scan prod", final=True)
    assert "failed at step 3/3 Read and keep the results" in failed, failed
    assert "the kube-bench report of prod-worker-1 cannot be read: it is not JSON" in failed
    assert len(ScanStore(kobot.redis).ids("prod")) == 2, "a failed scan is not kept"
