"""Approvals through the real dispatcher, policy, approval store and job queue (real Valkey).

Chat users are several people on one platform; the adapter records what kobot shows them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.dispatcher import Dispatcher
from bot.runtime import Runtime, build_runtime
from kobot.conversations import ButtonClick, Conversation, Identity, InboundMessage
from kobot.job_records import JobState
from kobot.messages import MessageKind, Tone
from tests.bot.recording_adapter import RecordingAdapter
from tests.fixtures.operations import PLAN_VERSION_KEY
from tests.support.dispatching import dispatching_runtime

ROOM = Conversation(platform="slack", conversation_id="C0OPS")
ALICE = Identity(platform="slack", user_id="U1", display_name="Alice")
BOB = Identity(platform="slack", user_id="U2", display_name="Bob")
CAROL = Identity(platform="slack", user_id="U3", display_name="Carol")
DAVE = Identity(platform="slack", user_id="U4", display_name="Dave")

POLICY = """
version: 1
people:
  alice: {identities: ["slack:U1"]}
  bob: {identities: ["slack:U2"]}
  carol: {identities: ["slack:U3"]}
bindings:
  - role: admin
    subjects: ["person:alice", "person:bob", "person:carol"]
  - role: viewer
    subjects: ["*"]
approvals:
  - commands: ["test.risky"]
    approvals: 2
    approver_role: admin
"""


@pytest.fixture
def runtime(redis_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    rt = dispatching_runtime(redis_url=redis_url, data_dir=data_dir, policy=POLICY, policy_dir=tmp_path)
    yield rt
    rt.close()


def chat(rt: Runtime) -> RecordingAdapter:
    adapter = rt.adapters["slack"]
    assert isinstance(adapter, RecordingAdapter)
    return adapter


async def say(dispatcher: Dispatcher, who: Identity, text: str) -> None:
    await dispatcher.on_message(InboundMessage(identity=who, conversation=ROOM, text=text))


async def click(
    dispatcher: Dispatcher, rt: Runtime, who: Identity, label: str, *, card_index: int = -1
) -> None:
    cards = [d for d in chat(rt).deliveries if d.message.kind is MessageKind.APPROVAL and d.message.buttons]
    card = cards[card_index]
    button = next(b for b in card.message.buttons if b.label == label)
    await dispatcher.on_click(
        ButtonClick(
            identity=who, conversation=ROOM, action_id=button.action_id, value=button.value, message=card.ref
        )
    )


async def test_risky_command_waits_for_two_approvers_then_runs(runtime: Runtime, data_dir: Path) -> None:
    dispatcher = Dispatcher(runtime=runtime)
    await say(dispatcher, ALICE, f"test risky demo marker={data_dir}")
    card = chat(runtime).deliveries[-1].message
    assert card.kind is MessageKind.APPROVAL
    assert "run fixture steps on demo (plan v1)" in card.to_text()
    assert len(runtime.queue) == 0, "nothing runs before approval"

    await click(dispatcher, runtime, ALICE, "Approve")
    refusal = chat(runtime).deliveries[-1].message
    assert refusal.title == "Not counted" and "own" in (refusal.body or ""), refusal

    await click(dispatcher, runtime, DAVE, "Approve")
    assert chat(runtime).deliveries[-1].message.title == "Not counted"
    assert len(runtime.queue) == 0

    await click(dispatcher, runtime, BOB, "Approve")
    assert "1/2" in chat(runtime).deliveries[-1].message.to_text()
    await click(dispatcher, runtime, BOB, "Approve")
    assert chat(runtime).deliveries[-1].message.title == "Not counted", "the same approver counts once"
    assert len(runtime.queue) == 0

    adapter = chat(runtime)
    adapter.refuse_next, adapter.retry_after = 100, 0.001  # the chat refuses the card edit for good
    await click(dispatcher, runtime, CAROL, "Approve")
    adapter.refuse_next = 0
    assert len(runtime.queue) == 1, "approved by two others: queued"
    job = runtime.jobs.records.require("1")
    assert job.spec.requested_by == ALICE and job.state is JobState.QUEUED
    actions = [e.action for e in runtime.audit.query(limit=50)]
    assert {"approval.requested", "job.queued"} <= set(actions)


async def test_forged_click_is_refused(runtime: Runtime, data_dir: Path) -> None:
    dispatcher = Dispatcher(runtime=runtime)
    await say(dispatcher, ALICE, f"test risky demo marker={data_dir}")
    card = chat(runtime).deliveries[-1]
    button = card.message.buttons[0]
    forged = button.value[:-4] + ("aaaa" if not button.value.endswith("aaaa") else "bbbb")
    await dispatcher.on_click(
        ButtonClick(
            identity=BOB, conversation=ROOM, action_id=button.action_id, value=forged, message=card.ref
        )
    )
    assert chat(runtime).deliveries[-1].message.title == "Not counted"
    elsewhere = Conversation(platform="slack", conversation_id="C0OTHER")
    await dispatcher.on_click(
        ButtonClick(identity=BOB, conversation=elsewhere, action_id=button.action_id, value=button.value)
    )
    assert chat(runtime).deliveries[-1].message.title == "Not counted"
    assert len(runtime.queue) == 0


async def test_changed_plan_voids_the_approval(runtime: Runtime, data_dir: Path) -> None:
    dispatcher = Dispatcher(runtime=runtime)
    await say(dispatcher, ALICE, f"test risky demo marker={data_dir}")
    await click(dispatcher, runtime, BOB, "Approve")
    runtime.redis.set(PLAN_VERSION_KEY, "2")
    await click(dispatcher, runtime, CAROL, "Approve")
    assert any(d.message.title == "Approval void" for d in chat(runtime).deliveries[-2:])
    assert len(runtime.queue) == 0


async def test_expired_request_is_cancelled_and_says_so(runtime: Runtime, data_dir: Path) -> None:
    runtime.settings.approval_ttl_seconds = 1
    dispatcher = Dispatcher(runtime=runtime)
    await say(dispatcher, ALICE, f"test risky demo marker={data_dir}")
    await asyncio.sleep(1.2)
    await dispatcher.expire_approvals()
    last = chat(runtime).deliveries[-1]
    assert last.kind == "update" and "expired" in last.message.to_text().lower()
    await click(dispatcher, runtime, BOB, "Approve", card_index=0)
    assert len(runtime.queue) == 0


async def test_break_glass_runs_at_once_and_is_announced_and_audited(
    runtime: Runtime, data_dir: Path
) -> None:
    dispatcher = Dispatcher(runtime=runtime)
    await say(dispatcher, BOB, f'test risky demo marker={data_dir} --break-glass "etcd is corrupt"')
    texts = [d.message for d in chat(runtime).deliveries]
    assert any(m.title == "Break-glass" and "etcd is corrupt" in (m.body or "") for m in texts)
    assert len(runtime.queue) == 1
    assert any(e.action == "break_glass" for e in runtime.audit.query(limit=20))

    await say(dispatcher, DAVE, f'test risky demo marker={data_dir} --break-glass "me too"')
    assert chat(runtime).deliveries[-1].message.tone is Tone.WARNING
    assert len(runtime.queue) == 1, "a viewer's break-glass runs nothing"


async def test_a_restart_between_request_and_approval_keeps_the_request(
    runtime: Runtime, redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    await say(Dispatcher(runtime=runtime), ALICE, f"test risky demo marker={data_dir}")
    card = chat(runtime).deliveries[-1]

    restarted = build_runtime(runtime.settings)
    try:
        restarted.adapters["slack"] = RecordingAdapter("slack")
        dispatcher = Dispatcher(runtime=restarted)
        for who in (BOB, CAROL):
            button = next(b for b in card.message.buttons if b.label == "Approve")
            await dispatcher.on_click(
                ButtonClick(
                    identity=who,
                    conversation=ROOM,
                    action_id=button.action_id,
                    value=button.value,
                    message=card.ref,
                )
            )
        assert len(restarted.queue) == 1
        edits = [d for d in chat(restarted).deliveries if d.kind == "update"]
        assert edits and all(d.ref == card.ref for d in edits), (
            "the original card is edited after the restart"
        )
    finally:
        restarted.close()


async def test_an_unexpected_error_is_answered_with_a_reference_not_its_text(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from commands.registry import COMMANDS

    async def broken(ctx: object, args: object) -> None:
        raise RuntimeError("password=hunter2 leaked by a bug")

    monkeypatch.setattr(COMMANDS["cluster.list"], "handler", broken)
    await say(Dispatcher(runtime=runtime), ALICE, "list clusters")
    answer = chat(runtime).deliveries[-1].message
    assert answer.title == "Error" and "hunter2" not in answer.to_text()
    reference = (answer.body or "").split("under ")[-1].rstrip(".")
    assert any(reference in record.getMessage() for record in caplog.records)
