"""`retry job N` is the job's own command once more: authorized and approved as that command.

Real dispatcher, policy, approval store and job queue (real Valkey); no worker runs, so a queued job
stays queued and a cancelled one stays cancelled unless a retry queues it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.dispatcher import Dispatcher
from bot.retry_flow import original_command
from bot.runtime import Runtime, build_runtime
from commands.handlers.submit import job_params
from commands.parser import parse
from commands.registry import typed_args
from kobot import keys
from kobot.clock import utcnow
from kobot.clusters import ClusterRecord, ClusterState, NodeRecord
from kobot.conversations import ButtonClick, Conversation, Identity, InboundMessage
from kobot.errors import ConflictError
from kobot.job_records import JobState
from kobot.messages import MessageKind
from tests.bot.recording_adapter import Delivery, RecordingAdapter
from tests.support.dispatching import dispatching_runtime

ROOM = Conversation(platform="slack", conversation_id="C0OPS")
ALICE = Identity(platform="slack", user_id="U1", display_name="Alice")
BOB = Identity(platform="slack", user_id="U2", display_name="Bob")
CAROL = Identity(platform="slack", user_id="U3", display_name="Carol")
RITA = Identity(platform="slack", user_id="U5", display_name="Rita")

POLICY = """
version: 1
people:
  alice: {identities: ["slack:U1"]}
  bob: {identities: ["slack:U2"]}
  carol: {identities: ["slack:U3"]}
roles:
  retrier:
    commands: ["job.*"]
    description: "may look after jobs, may not delete clusters"
bindings:
  - role: operator
    subjects: ["person:alice", "person:carol"]
  - role: admin
    subjects: ["person:bob"]
  - role: retrier
    subjects: ["slack:U5"]
  - role: viewer
    subjects: ["*"]
"""


@pytest.fixture
def runtime(redis_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    rt = dispatching_runtime(redis_url=redis_url, data_dir=data_dir, policy=POLICY, policy_dir=tmp_path)
    rt.clusters.save(
        ClusterRecord(
            name="prod",
            state=ClusterState.RUNNING,
            version="1.30.4",
            nodes=[
                NodeRecord(name="prod-master-1", role="master", address="192.0.2.11"),
                NodeRecord(name="prod-worker-1", role="worker", address="192.0.2.21"),
            ],
        )
    )
    yield rt
    rt.close()


def deliveries(rt: Runtime) -> list[Delivery]:
    adapter = rt.adapters["slack"]
    assert isinstance(adapter, RecordingAdapter)
    return adapter.deliveries


def cards(rt: Runtime) -> list[Delivery]:
    return [d for d in deliveries(rt) if d.message.kind is MessageKind.APPROVAL and d.message.buttons]


async def say(dispatcher: Dispatcher, who: Identity, text: str) -> None:
    await dispatcher.on_message(InboundMessage(identity=who, conversation=ROOM, text=text))


async def approve(dispatcher: Dispatcher, rt: Runtime, who: Identity) -> None:
    card = cards(rt)[-1]
    button = next(b for b in card.message.buttons if b.label == "Approve")
    await dispatcher.on_click(
        ButtonClick(
            identity=who, conversation=ROOM, action_id=button.action_id, value=button.value, message=card.ref
        )
    )


async def approved_then_cancelled_delete(dispatcher: Dispatcher, rt: Runtime) -> str:
    """Alice asks to delete prod, Bob approves, the job is queued, Alice cancels it before it starts."""
    await say(dispatcher, ALICE, "delete cluster prod")
    assert len(cards(rt)) == 1, deliveries(rt)[-1].message
    await approve(dispatcher, rt, BOB)
    job = rt.jobs.records.require("1")
    assert job.spec.kind == "cluster.delete" and job.state is JobState.QUEUED
    await say(dispatcher, ALICE, "cancel job 1")
    assert rt.jobs.records.require("1").state is JobState.CANCELLED
    return job.job_id


async def test_retry_of_an_approved_delete_after_the_cluster_changed_asks_again(runtime: Runtime) -> None:
    dispatcher = Dispatcher(runtime=runtime)
    job_id = await approved_then_cancelled_delete(dispatcher, runtime)
    record = runtime.clusters.require("prod")
    record.nodes = [NodeRecord(name="prod-master-1", role="master", address="192.0.2.99")]  # nodes reset
    runtime.clusters.save(record)

    await say(dispatcher, ALICE, f"retry job {job_id}")
    assert len(cards(runtime)) == 2, "the retry asks for a fresh approval"
    card = cards(runtime)[-1].message
    assert card.title == "Approval needed: cluster.delete on prod", card.title
    assert f"retry job {job_id}" in card.to_text() and "destroy 1 masters and 0 workers" in card.to_text()
    assert runtime.jobs.records.require(job_id).state is JobState.CANCELLED, "nothing runs before approval"

    await approve(dispatcher, runtime, ALICE)
    assert runtime.jobs.records.require(job_id).state is JobState.CANCELLED, "the requester cannot approve"
    await approve(dispatcher, runtime, BOB)
    resumed = runtime.jobs.records.require(job_id)
    assert resumed.state is JobState.QUEUED and resumed.attempt == 2


async def test_retry_with_the_same_plan_under_an_unexpired_approval_resumes_at_once(
    runtime: Runtime,
) -> None:
    dispatcher = Dispatcher(runtime=runtime)
    job_id = await approved_then_cancelled_delete(dispatcher, runtime)
    await say(dispatcher, ALICE, f"retry job {job_id}")
    assert len(cards(runtime)) == 1, "the approval still holds for the very same plan"
    assert deliveries(runtime)[-1].message.title == f"Retrying job {job_id}"
    assert runtime.jobs.records.require(job_id).state is JobState.QUEUED


async def test_a_retry_by_someone_else_does_not_run_under_the_requesters_approval(
    runtime: Runtime,
) -> None:
    """Bob approved Alice's delete; Carol may delete too, but only with an approval of her own."""
    dispatcher = Dispatcher(runtime=runtime)
    job_id = await approved_then_cancelled_delete(dispatcher, runtime)
    await say(dispatcher, CAROL, f"retry job {job_id}")
    assert len(cards(runtime)) == 2, "Carol's retry asks for a fresh approval"
    assert runtime.jobs.records.require(job_id).state is JobState.CANCELLED, "nothing runs before approval"
    await approve(dispatcher, runtime, BOB)
    resumed = runtime.jobs.records.require(job_id)
    assert resumed.state is JobState.QUEUED and resumed.attempt == 2


async def test_retry_after_the_approval_expired_asks_again(runtime: Runtime) -> None:
    dispatcher = Dispatcher(runtime=runtime)
    job_id = await approved_then_cancelled_delete(dispatcher, runtime)
    approval = runtime.approvals.approval_of_job(job_id=job_id)
    assert approval is not None and runtime.approvals.still_covers(
        request=approval, plan_hash=approval.plan_hash
    )
    # its time passes, as stored: a 1 s approval time, run on a loaded machine, could lapse before the
    # approving click and fail the test for the wrong reason
    lapsed = approval.model_copy(update={"expires_at": utcnow() - timedelta(seconds=1)})
    runtime.redis.set(keys.approval(approval.request_id), lapsed.model_dump_json(), keepttl=True)
    await say(dispatcher, ALICE, f"retry job {job_id}")
    assert len(cards(runtime)) == 2
    assert runtime.jobs.records.require(job_id).state is JobState.CANCELLED


async def test_retry_of_a_break_glass_job_needs_an_approval(runtime: Runtime) -> None:
    dispatcher = Dispatcher(runtime=runtime)
    await say(dispatcher, BOB, 'delete cluster prod --break-glass "etcd is gone"')
    assert runtime.jobs.records.require("1").state is JobState.QUEUED and not cards(runtime)
    await say(dispatcher, BOB, "cancel job 1")
    await say(dispatcher, ALICE, "retry job 1")
    assert len(cards(runtime)) == 1, "break-glass covered one run, not its retries"
    assert runtime.jobs.records.require("1").state is JobState.CANCELLED


async def test_retry_is_authorized_as_the_original_command(runtime: Runtime) -> None:
    dispatcher = Dispatcher(runtime=runtime)
    job_id = await approved_then_cancelled_delete(dispatcher, runtime)
    await say(dispatcher, RITA, f"retry job {job_id}")
    refusal = deliveries(runtime)[-1].message
    assert refusal.title == "Not allowed" and "cluster.delete" in (refusal.body or ""), refusal
    assert runtime.jobs.records.require(job_id).state is JobState.CANCELLED
    refused = runtime.audit.query(action="command.refused", limit=5)
    assert refused and refused[0].cluster == "prod"


async def test_a_change_job_retries_at_once_as_before(runtime: Runtime, data_dir: Path) -> None:
    dispatcher = Dispatcher(runtime=runtime)
    await say(dispatcher, ALICE, f"test steps prod marker={data_dir / 'missing'}")
    assert runtime.jobs.records.require("1").state is JobState.QUEUED
    await say(dispatcher, ALICE, "cancel job 1")
    await say(dispatcher, ALICE, "retry job 1")
    assert not cards(runtime)
    assert deliveries(runtime)[-1].message.title == "Retrying job 1"
    assert runtime.jobs.records.require("1").state is JobState.QUEUED


@pytest.mark.parametrize(
    "command_text",
    ["", "list clusters", "test steps prod marker=/tmp/x", "delete cluster staging"],
    ids=["empty", "not-a-job", "another-kind", "another-cluster"],
)
async def test_a_job_whose_command_cannot_be_read_again_is_not_retried(
    runtime: Runtime, command_text: str
) -> None:
    """Only the command that queued this very kind on this very cluster is checked against the policy."""
    record = runtime.jobs.submit(
        runtime.jobs.new_spec(
            kind="cluster.delete",
            cluster="prod",
            params={},
            requested_by=ALICE,
            reply_to=ROOM,
            command_text=command_text,
        )
    )
    runtime.jobs.cancel(record.job_id)
    await say(Dispatcher(runtime=runtime), ALICE, f"retry job {record.job_id}")
    answer = deliveries(runtime)[-1].message
    assert answer.title == "Cannot do that" and "run its command anew" in (answer.body or ""), answer
    assert runtime.jobs.records.require(record.job_id).state is JobState.CANCELLED


@pytest.mark.parametrize(
    ("command_text", "params"),
    [
        ("test steps prod marker=/tmp/x", {"marker": "/tmp/elsewhere"}),
        ("test steps prod marker=/tmp/x", {"marker": "/tmp/x", "extra": "added later"}),
        ("test steps prod marker=/tmp/x", {}),
    ],
    ids=["changed", "added", "dropped"],
)
async def test_a_job_whose_stored_params_differ_from_its_command_is_not_retried(
    runtime: Runtime, command_text: str, params: dict[str, str]
) -> None:
    """What resumes is the stored params, so they must be what the command's text asks for."""
    record = runtime.jobs.submit(
        runtime.jobs.new_spec(
            kind="test.steps",
            cluster="prod",
            params=params,
            requested_by=ALICE,
            reply_to=ROOM,
            command_text=command_text,
        )
    )
    runtime.jobs.cancel(record.job_id)
    await say(Dispatcher(runtime=runtime), ALICE, f"retry job {record.job_id}")
    answer = deliveries(runtime)[-1].message
    assert answer.title == "Cannot do that" and "run its command anew" in (answer.body or ""), answer
    assert runtime.jobs.records.require(record.job_id).state is JobState.CANCELLED


async def test_a_job_whose_stored_params_match_its_command_is_retried(runtime: Runtime) -> None:
    record = runtime.jobs.submit(
        runtime.jobs.new_spec(
            kind="test.steps",
            cluster="prod",
            params={"marker": "/tmp/x"},
            requested_by=ALICE,
            reply_to=ROOM,
            command_text="test steps prod marker=/tmp/x",
        )
    )
    runtime.jobs.cancel(record.job_id)
    await say(Dispatcher(runtime=runtime), ALICE, f"retry job {record.job_id}")
    assert deliveries(runtime)[-1].message.title == f"Retrying job {record.job_id}"
    assert runtime.jobs.records.require(record.job_id).state is JobState.QUEUED


AUDIT_POLICY = """
version: 1
people:
  pat: {identities: ["slack:U7"]}
  dan: {identities: ["slack:U8"]}
bindings:
  - {role: admin, subjects: ["person:pat"], clusters: ["prod*"]}
  - {role: admin, subjects: ["person:dan"], clusters: ["dev-*"]}
"""
PAT = Identity(platform="slack", user_id="U7", display_name="Pat")
DAN = Identity(platform="slack", user_id="U8", display_name="Dan")


async def test_job_commands_are_audited_on_their_jobs_cluster(runtime: Runtime, tmp_path: Path) -> None:
    policy = tmp_path / "audit-policy.yaml"
    policy.write_text(AUDIT_POLICY)
    runtime.settings.policy_file = policy
    rt = build_runtime(runtime.settings)
    rt.adapters["slack"] = RecordingAdapter("slack")
    try:
        dispatcher = Dispatcher(runtime=rt)
        job = rt.jobs.submit(
            rt.jobs.new_spec(
                kind="test.steps",
                cluster="prod",
                params={"marker": "/nonexistent"},
                requested_by=PAT,
                reply_to=ROOM,
                command_text="test steps prod marker=/nonexistent",
            )
        )
        for text in (f"job status {job.job_id}", f"cancel job {job.job_id}", f"retry job {job.job_id}"):
            await say(dispatcher, PAT, text)
        await say(dispatcher, DAN, f"job status {job.job_id}")  # refused: dan is admin on dev-* only
        entries = [e for e in rt.audit.query(limit=50) if e.action in ("command", "command.refused")]
        by_text = {(e.detail.get("text"), e.action): e.cluster for e in entries}
        assert by_text == {
            (f"job status {job.job_id}", "command"): "prod",
            (f"cancel job {job.job_id}", "command"): "prod",
            (f"retry job {job.job_id}", "command"): "prod",
            (f"job status {job.job_id}", "command.refused"): "prod",
        }, by_text

        await say(dispatcher, DAN, "audit")
        dev_view = deliveries(rt)[-1].message.to_text()
        assert f"job {job.job_id}" not in dev_view, dev_view
        await say(dispatcher, PAT, "audit")
        prod_view = deliveries(rt)[-1].message.to_text()
        assert f"cancel job {job.job_id}" in prod_view and f"retry job {job.job_id}" in prod_view
    finally:
        rt.close()


async def test_a_create_that_took_the_recorded_repository_is_retried(runtime: Runtime) -> None:
    # the create handler adds the repository `setup repository` recorded to the job's params; the text
    # never holds it, and the retry resumes with what the approval showed
    text = "create cluster lab masters=1 workers=1 provider=vsphere"
    params = job_params(typed_args(parse(text)))
    params["offline_repo"] = {"registry": "repo.lab:5000", "files_url": "http://repo.lab:8080/files"}
    record = runtime.jobs.submit(
        runtime.jobs.new_spec(
            kind="cluster.create",
            cluster="lab",
            params=params,
            requested_by=ALICE,
            reply_to=ROOM,
            command_text=text,
        )
    )
    runtime.jobs.cancel(record.job_id)
    await say(Dispatcher(runtime=runtime), ALICE, f"retry job {record.job_id}")
    answer = deliveries(runtime)[-1].message
    assert "run its command anew" not in (answer.body or ""), answer
    with pytest.raises(ConflictError):  # a text that asks for other params is still refused
        original_command(
            record.model_copy(
                update={"spec": record.spec.model_copy(update={"params": {**params, "workers": 2}})}
            ),
            allow_local_hosts=False,
        )
