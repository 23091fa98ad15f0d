"""Autoheal end to end: the Kubernetes API peer flips a worker NotReady, the node watcher sees it, and
past the threshold the replacement is queued (pre-approved by the policy) or asked for (an approval
request, whose Approve click runs the replacement to its end and whose Reject leaves the node to
people, said once), one node at a time; the storm guard replaces nothing and says so once; a master is never
replaced. The queued replacement runs to the end on a real RQ worker: Terraform's `testhosts` module
stands in for vSphere, the new machine's address comes from kobot's IP pool (an SSH test host), Ansible
runs the recording fixture playbooks of tests/workers/test_day2_jobs_peer.py."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.approvals import APPROVE_ACTION, REJECT_ACTION, ApprovalStatus
from bot.autoheal import AUTOHEAL_IDENTITY, Autoheal, AutohealVerdict
from bot.dispatcher import Dispatcher
from bot.node_watch import NodeReadinessWatcher
from bot.runtime import Runtime, build_runtime
from kobot.autoheal import AutohealStore
from kobot.clock import utcnow
from kobot.clusters import ClusterRecord, ClusterState, NodeRecord
from kobot.conversations import ButtonClick, Conversation, Identity, InboundMessage
from kobot.job_records import JobKind, JobRecord, JobState
from kobot.messages import OutgoingMessage
from kobot.settings_ip_pools import IpPoolConfig
from kobot.store import secret_key
from tests.bot.recording_adapter import RecordingAdapter
from tests.hosts.lab import LabHost
from tests.peers.kubernetes import KubernetesApiPeer
from tests.support.dispatching import with_recorded_terminal_and_alerts
from tests.workers.jobkit import job_service, run_queue
from tests.workers.test_day2_jobs_peer import PLAYBOOKS, RECORDER, runs, settings_for
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets

REPO = Path(__file__).resolve().parents[2]
OPS = Identity(platform="terminal", user_id="ops")
WATCHERS = Conversation(platform="terminal", conversation_id="watchers")
APPROVERS = Conversation(platform="terminal", conversation_id="approvers")
NODES = [
    ("demo-master-1", "master", "127.0.0.1"),
    ("demo-worker-1", "worker", "127.0.0.11"),
    ("demo-worker-2", "worker", "127.0.0.12"),
    ("demo-worker-3", "worker", "127.0.0.13"),
]
PRE_APPROVED = """version: 1
bindings:
  - {role: admin, subjects: ["terminal:*"]}
approvals:
  - {clusters: ["demo"], commands: ["node.autoheal"], approvals: 0}
"""
SWITCH_ON = "autoheal demo on after=2m max-unhealthy=30%"
ASKS_APPROVAL = """version: 1
bindings:
  - {role: admin, subjects: ["terminal:*"]}
"""


class Clock:
    """The time autoheal reads, moved by the test instead of waiting minutes."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def peer() -> Iterator[KubernetesApiPeer]:
    with KubernetesApiPeer(eviction_delay=0.05) as server:
        yield server


@pytest.fixture
def autoheal_on(
    redis_url: str, data_dir: Path, tmp_path: Path, peer: KubernetesApiPeer
) -> Callable[..., contextlib.AbstractAsyncContextManager[Scene]]:
    """`_autoheal_on` for this test's store, folders and peer."""
    return functools.partial(_autoheal_on, redis_url, data_dir, tmp_path, peer)


def _terraform_dir_with_testhosts_as_vsphere(tmp_path: Path) -> Path:
    modules = tmp_path / "terraform" / "modules"
    modules.mkdir(parents=True)
    (modules / "vsphere").symlink_to(REPO / "terraform" / "modules" / "testhosts", target_is_directory=True)
    return tmp_path / "terraform"


def _runtime(
    redis_url: str, data_dir: Path, tmp_path: Path, *, policy: str, pool: list[LabHost] | None = None
) -> Runtime:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    for name in PLAYBOOKS:
        (playbooks / f"{name}.yml").write_text(RECORDER.format(name=name))
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(policy)
    extra: dict[str, object] = {}
    if pool:
        network = pool[0].address.rsplit(".", 1)[0]
        extra = {
            "ssh_user": pool[0].user,
            "ssh_key_file": pool[0].key_path,
            "terraform_dir": _terraform_dir_with_testhosts_as_vsphere(tmp_path),
            "ip_pools": [
                IpPoolConfig(zone="lab", cidr=f"{network}.0/24", first=pool[0].address, last=pool[0].address)
            ],
        }
    settings = settings_for(redis_url, data_dir, playbooks).model_copy(
        update={
            "policy_file": policy_file,
            "in_process_worker": False,
            "redis_url": SecretStr(redis_url),
            **extra,
        }
    )
    rt = with_recorded_terminal_and_alerts(build_runtime(settings))
    return rt


def _cluster(rt: Runtime, peer: KubernetesApiPeer, *, network: str | None = None) -> None:
    """With `network`, the nodes have addresses there that no host answers (the fixture playbooks play
    locally; Terraform takes no loopback address); the new machine is the pool's SSH test host."""
    nodes = [(n, r, f"{network}.{201 + i}" if network else a) for i, (n, r, a) in enumerate(NODES)]
    rt.clusters.save(
        ClusterRecord(
            name="demo",
            provider="vsphere",
            version="1.30.2",
            state=ClusterState.RUNNING,
            spec={"version": "1.30.2", "masters": 1, "workers": 3, "provider": "vsphere"},
            nodes=[NodeRecord(name=n, role=r, address=a, zone="lab", state="ready") for n, r, a in nodes],
        )
    )
    kubeconfig = peer.write_kubeconfig(rt.settings.data_dir / "peer.kubeconfig")
    ClusterSecrets(redis=rt.redis, secret=secret_key(rt.settings)).put(
        cluster="demo", name=KUBECONFIG_SECRET, value=kubeconfig.read_bytes()
    )
    kubeconfig.unlink()
    for name, role, _ in NODES:
        peer.add_node(name, role=role)


@dataclass
class Scene:
    """A kobot runtime with the demo cluster on the peer, autoheal switched on from chat, alerts running."""

    rt: Runtime
    dispatcher: Dispatcher
    watcher: NodeReadinessWatcher
    clock: Clock


@contextlib.asynccontextmanager
async def _autoheal_on(
    redis_url: str,
    data_dir: Path,
    tmp_path: Path,
    peer: KubernetesApiPeer,
    *,
    policy: str,
    switch_on: str = SWITCH_ON,
    approvals_here: bool = False,
    pool: list[LabHost] | None = None,
) -> AsyncIterator[Scene]:
    """The cluster's node notices go to WATCHERS (and its approvals to APPROVERS with `approvals_here`),
    then `switch_on` is said there. With `pool`, new machines come from the pool's SSH test host."""
    rt = _runtime(redis_url, data_dir, tmp_path, policy=policy, pool=pool)
    clock = Clock()
    try:
        _cluster(rt, peer, network=pool[0].address.rsplit(".", 1)[0] if pool else None)
        dispatcher = Dispatcher(runtime=rt)
        autoheal = Autoheal(runtime=rt, approvals=dispatcher.approvals, runs=dispatcher.runs, clock=clock)
        watcher = NodeReadinessWatcher(runtime=rt, autoheal=autoheal)
        await _say(dispatcher, "notify demo node here")
        if approvals_here:
            await _say(dispatcher, "notify demo approvals here", where=APPROVERS)
        await _say(dispatcher, switch_on)
        await rt.alerts.start()  # type: ignore[union-attr]
        yield Scene(rt=rt, dispatcher=dispatcher, watcher=watcher, clock=clock)
    finally:
        if rt.alerts is not None:
            await rt.alerts.stop()
        rt.close()


async def _say(dispatcher: Dispatcher, text: str, *, where: Conversation = WATCHERS) -> None:
    await dispatcher.on_message(InboundMessage(identity=OPS, conversation=where, text=text))


def _titles(rt: Runtime) -> list[str]:
    adapter = rt.adapters["terminal"]
    assert isinstance(adapter, RecordingAdapter)
    return [d.message.title for d in adapter.deliveries if d.ref.conversation_id == WATCHERS.conversation_id]


def _approval_cards(rt: Runtime) -> list[OutgoingMessage]:
    """Approval cards posted to the approval channel (not their edits)."""
    adapter = rt.adapters["terminal"]
    assert isinstance(adapter, RecordingAdapter)
    return [
        d.message
        for d in adapter.deliveries
        if d.kind == "send"
        and d.ref.conversation_id == APPROVERS.conversation_id
        and "replace node" in str(d.message)
    ]


def _click_on_card(card: OutgoingMessage, action: str) -> ButtonClick:
    """A click on the card's own (signed) button, as the chat adapter hands it over."""
    button = next(b for b in card.buttons if b.action_id == action)
    return ButtonClick(identity=OPS, conversation=APPROVERS, action_id=action, value=button.value)


async def _replacement_runs_to_the_end(
    rt: Runtime, peer: KubernetesApiPeer, *, job_id: str, node: str
) -> JobRecord:
    """The job is autoheal's replacement of `node`; a real RQ worker runs it to success and `node` leaves."""
    job = rt.jobs.records.require(job_id)
    assert job.spec.kind == JobKind.NODE_REPLACE.value and job.spec.params["node"] == node
    assert job.spec.requested_by == AUTOHEAL_IDENTITY
    await asyncio.to_thread(run_queue, job_service(rt.settings, rt.redis))
    done = rt.jobs.records.require(job_id)
    assert done.state is JobState.SUCCEEDED, done.error
    assert node not in peer.node_names()
    [left] = runs(rt.settings, "node_remove")
    assert left["vars"]["nodes_to_remove"] == [node]
    return done


async def _asked_past_the_threshold(scene: Scene, node: str) -> str:
    """Seen NotReady, then again past the 2-minute threshold: autoheal asks for `node`'s replacement."""
    await scene.watcher.check_once()
    scene.clock.advance(minutes=3)
    await scene.watcher.check_once()
    asked = scene.watcher.autoheal_outcomes["demo"]
    assert (asked.verdict, asked.node) == (AutohealVerdict.ASKED, node)
    assert asked.approval_id is not None
    return asked.approval_id


async def _until_said(rt: Runtime, title: str) -> None:
    for _ in range(200):
        if any(title in t for t in _titles(rt)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never said {title!r}: {_titles(rt)}")


async def test_worker_not_ready_past_the_threshold_is_replaced_pre_approved_to_a_finished_job_peer(
    autoheal_on: Callable[..., contextlib.AbstractAsyncContextManager[Scene]],
    peer: KubernetesApiPeer,
    lab_hosts: list[LabHost],
) -> None:
    async with autoheal_on(
        policy=PRE_APPROVED,
        switch_on="autoheal demo on after=5m max-unhealthy=30%",
        pool=lab_hosts[:1],
    ) as scene:
        rt, watcher, clock = scene.rt, scene.watcher, scene.clock
        assert any("autoheal is on for demo" in t for t in _titles(rt))
        peer.add_node("demo-worker-4", role="worker")  # what kubeadm join makes appear in the API

        peer.set_ready("demo-worker-2", False)
        await watcher.check_once()
        assert watcher.autoheal_outcomes["demo"].verdict is AutohealVerdict.NOTHING, (
            "not NotReady long enough"
        )
        clock.advance(minutes=4)
        await watcher.check_once()
        assert watcher.autoheal_outcomes["demo"].verdict is AutohealVerdict.NOTHING
        clock.advance(minutes=2)
        await watcher.check_once()
        queued = watcher.autoheal_outcomes["demo"]
        assert (queued.verdict, queued.node) == (AutohealVerdict.QUEUED, "demo-worker-2")
        assert queued.job_id is not None
        await watcher.check_once()
        under_way = watcher.autoheal_outcomes["demo"]
        assert under_way.verdict is AutohealVerdict.BUSY, "the job is under way"

        done = await _replacement_runs_to_the_end(rt, peer, job_id=queued.job_id, node="demo-worker-2")
        assert [s.name for s in done.steps] == [
            "plan",
            "master_leaves",
            "machines",
            "inventory",
            "wait_ssh",
            "join",
            "ready",
            "cordon",
            "drain",
            "remove",
        ]
        [joined] = runs(rt.settings, "node_add")
        assert joined["vars"]["nodes_to_add"] == ["demo-worker-4"]
        record = rt.clusters.require("demo")
        new = next(n for n in record.nodes if n.name == "demo-worker-4")
        assert new.address == lab_hosts[0].address and "demo-worker-2" not in [n.name for n in record.nodes]
        entries = rt.audit.query(action="autoheal.replace")
        assert [(e.actor, e.result) for e in entries] == [
            (AUTOHEAL_IDENTITY.key, "queued (pre-approved by the policy)")
        ]
        assert entries[0].detail["turned_on_by"] == OPS.key

        await watcher.check_once()
        assert watcher.autoheal_outcomes["demo"].verdict is AutohealVerdict.NOTHING
        assert AutohealStore(rt.redis).action("demo") is None, "the finished job is forgotten"


async def test_without_pre_approval_one_request_at_a_time_and_masters_are_left_to_people_peer(
    autoheal_on: Callable[..., contextlib.AbstractAsyncContextManager[Scene]], peer: KubernetesApiPeer
) -> None:
    async with autoheal_on(
        policy=ASKS_APPROVAL,
        switch_on="自愈 demo 开 等待=2m max-unhealthy=80%",
        approvals_here=True,
    ) as scene:
        rt, watcher, clock = scene.rt, scene.watcher, scene.clock

        peer.set_ready("demo-master-1", False)
        peer.set_ready("demo-worker-3", False)
        approval_id = await _asked_past_the_threshold(scene, "demo-worker-3")
        request = rt.approvals.get(request_id=approval_id)
        assert (
            request.requester == AUTOHEAL_IDENTITY
            and request.command_text == "replace node demo-worker-3 on demo"
        )
        assert request.conversation.conversation_id == APPROVERS.conversation_id, "asked where approvals go"
        assert rt.jobs.records.get("1") is None, "nothing runs before the approval"
        await _until_said(rt, "autoheal never replaces a master: demo-master-1 is left to people")

        peer.set_ready("demo-worker-1", False)
        clock.advance(minutes=3)
        await watcher.check_once()
        await watcher.check_once()
        busy = watcher.autoheal_outcomes["demo"]
        assert (busy.verdict, busy.node) == (AutohealVerdict.BUSY, "demo-worker-3"), "one node at a time"
        assert (
            rt.approvals.unrun() == []
            and len([t for t in _titles(rt) if "never replaces a master" in t]) == 1
        )
        entries = rt.audit.query(action="autoheal.replace")
        assert [(e.actor, e.result, e.detail["node"]) for e in entries] == [
            (AUTOHEAL_IDENTITY.key, "approval requested", "demo-worker-3")
        ]


async def test_approved_replacement_runs_to_a_finished_job_peer(
    autoheal_on: Callable[..., contextlib.AbstractAsyncContextManager[Scene]],
    peer: KubernetesApiPeer,
    lab_hosts: list[LabHost],
) -> None:
    async with autoheal_on(
        policy=ASKS_APPROVAL,
        approvals_here=True,
        pool=lab_hosts[:1],
    ) as scene:
        rt, dispatcher, watcher = scene.rt, scene.dispatcher, scene.watcher
        peer.add_node("demo-worker-4", role="worker")  # what kubeadm join makes appear in the API

        peer.set_ready("demo-worker-2", False)
        approval_id = await _asked_past_the_threshold(scene, "demo-worker-2")
        await asyncio.sleep(0.3)  # the cluster's approval notice would have reached the channel by now
        [card] = _approval_cards(rt)
        assert card.buttons, "one card, with buttons, in the approval channel autoheal asked in"

        await dispatcher.on_click(_click_on_card(card, APPROVE_ACTION))
        assert rt.approvals.get(request_id=approval_id).status is ApprovalStatus.APPROVED
        await watcher.check_once()
        busy = watcher.autoheal_outcomes["demo"]
        assert (busy.verdict, busy.node) == (AutohealVerdict.BUSY, "demo-worker-2"), "the job is under way"
        action = AutohealStore(rt.redis).action("demo")
        assert action is not None and action.job_id is not None
        await _replacement_runs_to_the_end(rt, peer, job_id=action.job_id, node="demo-worker-2")

        await watcher.check_once()
        assert watcher.autoheal_outcomes["demo"].verdict is AutohealVerdict.NOTHING
        assert AutohealStore(rt.redis).action("demo") is None, "the finished job is forgotten"
        assert not [t for t in _titles(rt) if "autoheal leaves" in t]


async def test_rejected_replacement_leaves_the_node_to_people_said_once_peer(
    autoheal_on: Callable[..., contextlib.AbstractAsyncContextManager[Scene]], peer: KubernetesApiPeer
) -> None:
    async with autoheal_on(
        policy=ASKS_APPROVAL,
        approvals_here=True,
    ) as scene:
        rt, dispatcher, watcher, clock = scene.rt, scene.dispatcher, scene.watcher, scene.clock

        peer.set_ready("demo-worker-3", False)
        approval_id = await _asked_past_the_threshold(scene, "demo-worker-3")
        [card] = _approval_cards(rt)

        await dispatcher.on_click(_click_on_card(card, REJECT_ACTION))
        assert rt.approvals.get(request_id=approval_id).status is ApprovalStatus.REJECTED
        for _ in range(3):
            clock.advance(minutes=3)
            await watcher.check_once()
            assert watcher.autoheal_outcomes["demo"].verdict is AutohealVerdict.NOTHING
        left = "autoheal leaves demo-worker-3 to people"
        await _until_said(rt, left)
        await asyncio.sleep(0.3)
        assert len([t for t in _titles(rt) if t == left]) == 1, "said once"
        assert rt.jobs.records.get("1") is None and rt.approvals.unrun() == []
        assert AutohealStore(rt.redis).action("demo") is None
        assert len(_approval_cards(rt)) == 1, "not asked again while the node stays NotReady"

        peer.set_ready("demo-worker-3", True)
        await watcher.check_once()
        peer.set_ready("demo-worker-3", False)
        await watcher.check_once()
        clock.advance(minutes=3)
        await watcher.check_once()
        again = watcher.autoheal_outcomes["demo"]
        assert (again.verdict, again.node) == (AutohealVerdict.ASKED, "demo-worker-3"), (
            "Ready once more, the node is autoheal's again"
        )


async def test_storm_guard_replaces_nothing_and_pages_once_peer(
    autoheal_on: Callable[..., contextlib.AbstractAsyncContextManager[Scene]], peer: KubernetesApiPeer
) -> None:
    async with autoheal_on(
        policy=PRE_APPROVED,
    ) as scene:
        rt, dispatcher, watcher, clock = scene.rt, scene.dispatcher, scene.watcher, scene.clock

        peer.set_ready("demo-worker-1", False)
        peer.set_ready("demo-worker-2", False)  # 2 of 4 nodes: 50% > 30%
        for _ in range(3):
            clock.advance(minutes=3)
            await watcher.check_once()
            assert watcher.autoheal_outcomes["demo"].verdict is AutohealVerdict.OUTAGE
        await _until_said(rt, "outage, not a node failure: paging humans")
        await asyncio.sleep(0.3)
        assert len([t for t in _titles(rt) if t.startswith("outage, not a node failure")]) == 1, "said once"
        assert rt.jobs.records.get("1") is None and rt.approvals.unrun() == []
        assert rt.audit.query(action="autoheal.replace") == []

        await _say(dispatcher, "autoheal demo off")
        clock.advance(minutes=3)
        await watcher.check_once()
        assert watcher.autoheal_outcomes["demo"].verdict is AutohealVerdict.NOTHING


async def test_autoheal_on_a_manual_cluster_is_refused_with_what_to_do(
    redis_url: str, data_dir: Path, tmp_path: Path, peer: KubernetesApiPeer
) -> None:
    rt = _runtime(redis_url, data_dir, tmp_path, policy=PRE_APPROVED)
    try:
        rt.clusters.save(ClusterRecord(name="own", state=ClusterState.RUNNING))
        dispatcher = Dispatcher(runtime=rt)
        await _say(dispatcher, "autoheal own on")
        adapter = rt.adapters["terminal"]
        assert isinstance(adapter, RecordingAdapter)
        said = adapter.deliveries[-1].message
        assert "provider=manual" in (said.body or said.title) or "provider=manual" in str(said)
        assert AutohealStore(rt.redis).setting("own") is None
    finally:
        rt.close()
