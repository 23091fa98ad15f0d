"""kobot as deployed: `create_app(settings)` with DingTalk configured, frames in over the stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from bot.app import create_app
from kobot.settings import Settings
from tests.peers.dingtalk import Card, DingTalkPeer
from tests.support.dingtalk import settings_for
from tests.support.waiting import wait_until

MARKER = Path(__file__)
"""A file that exists: the fixture operation's check step passes."""

POLICY = """
version: 1
bindings:
  - role: operator
    subjects: ["dingtalk:staff-alice"]
  - role: admin
    subjects: ["dingtalk:staff-carol"]
approvals:
  - commands: ["test.steps"]
    clusters: ["guarded"]
    approvals: 1
    approver_role: admin
"""


@contextlib.asynccontextmanager
async def _kobot(
    peer: DingTalkPeer, redis_url: str, data_dir: Path, *, template: bool = True
) -> AsyncIterator[FastAPI]:
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY)
    settings = Settings(
        policy_file=policy,
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        dingtalk=settings_for(peer, template=template),
        playbooks_dir=Path("tests/fixtures/playbooks"),
        progress_edit_interval=0,
        plugins=["tests.fixtures.operations"],
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def kobot(peer: DingTalkPeer, redis_url: str, data_dir: Path) -> AsyncIterator[FastAPI]:
    async with _kobot(peer, redis_url, data_dir) as app:
        yield app


def _card_kinds(peer: DingTalkPeer, kind: str) -> list[Card]:
    return [card for card in list(peer.cards.values()) if card.params.get("kind") == kind]


def _public_cards(peer: DingTalkPeer, title_part: str) -> list[tuple[str, Card]]:
    """Cards on the public template (which has no `kind`), told apart by their title."""
    return [(k, c) for k, c in list(peer.cards.items()) if title_part in c.params.get("title", "")]


async def test_peer_e2e_mention_gets_a_reply(kobot: FastAPI, peer: DingTalkPeer) -> None:
    peer.push_chat("help")

    assert await wait_until(lambda: len(peer.requests_to("/robot/sendBySession")) == 1, timeout=10)
    reply = peer.requests_to("/robot/sendBySession")[0]
    assert reply.status == 200 and reply.answer == {"errcode": 0, "errmsg": "ok"}
    assert "create cluster" in reply.body["markdown"]["text"]


async def test_peer_e2e_job_progress_is_one_card_edited_to_the_final_state(
    kobot: FastAPI, peer: DingTalkPeer
) -> None:
    peer.push_chat(f"test steps demo marker={MARKER}")

    def finished() -> bool:
        cards = _card_kinds(peer, "progress")
        return len(cards) == 1 and cards[0].params["tone"] in ("success", "danger")

    assert await wait_until(finished, timeout=60, interval=0.1)
    [card] = _card_kinds(peer, "progress")
    assert card.params["tone"] == "success"
    assert card.params["title"].endswith("test steps demo")
    assert card.open_space_id == "dtv1.card//IM_GROUP.cidGroupProd01"
    assert card.history[0]["progress"] == "1/4"
    assert len(peer.requests_to("/v1.0/card/instances/createAndDeliver")) == 1
    assert all(r.status == 200 for r in peer.requests_to("/v1.0/card/instances"))


async def test_peer_e2e_approval_click_reaches_the_dispatcher(kobot: FastAPI, peer: DingTalkPeer) -> None:
    peer.push_chat(f"test steps guarded marker={MARKER}")
    assert await wait_until(lambda: len(_card_kinds(peer, "approval")) == 1, timeout=10)
    out_track_id = next(k for k, c in list(peer.cards.items()) if c.params["kind"] == "approval")
    approve = json.loads(peer.cards[out_track_id].params["buttons"])[0]
    assert approve["action_id"] == "approval.approve"

    # The requester may not approve their own request; an admin may.
    peer.push_card_click(
        out_track_id=out_track_id,
        user_id="staff-carol",
        params={"action_id": "approval.approve", "value": approve["value"]},
    )

    assert await wait_until(lambda: peer.cards[out_track_id].params["tone"] == "success", timeout=10)
    assert "approved" in peer.cards[out_track_id].params["status"]
    assert await wait_until(lambda: len(_card_kinds(peer, "progress")) == 1, timeout=10)


async def test_peer_e2e_forged_click_value_is_refused(kobot: FastAPI, peer: DingTalkPeer) -> None:
    peer.push_chat(f"test steps guarded marker={MARKER}")
    assert await wait_until(lambda: len(_card_kinds(peer, "approval")) == 1, timeout=10)
    out_track_id = next(k for k, c in list(peer.cards.items()) if c.params["kind"] == "approval")
    approve = json.loads(peer.cards[out_track_id].params["buttons"])[0]
    forged = approve["value"][:-4] + "0000"

    frame = peer.push_card_click(
        out_track_id=out_track_id,
        user_id="staff-carol",
        params={"action_id": "approval.approve", "value": forged},
    )

    assert await wait_until(lambda: peer.ack_for(frame) is not None, timeout=10)
    await asyncio.sleep(1.0)
    assert peer.cards[out_track_id].params["tone"] == "warning"
    assert _card_kinds(peer, "progress") == []


async def test_peer_e2e_message_sent_while_kobot_is_away_is_lost_and_later_ones_are_answered(
    kobot: FastAPI, peer: DingTalkPeer
) -> None:
    # DingTalk keeps nothing for a client that is not connected: kobot cannot answer what it never got.
    peer.drop()
    away = peer.push_chat("help")
    assert await wait_until(lambda: peer.open_connections() == [2], timeout=15)
    peer.push_chat("list clusters", conversation_type="1", conversation_id="cidDirect", staff_id="staff-bob")

    assert await wait_until(lambda: len(peer.requests_to("/robot/sendBySession")) == 1, timeout=15)
    await asyncio.sleep(0.5)
    [reply] = peer.requests_to("/robot/sendBySession")
    assert "create cluster" not in reply.body["markdown"]["text"]
    assert peer.dropped == [away]
    assert peer.unacked() == []


async def test_peer_e2e_approval_on_the_public_card_needs_no_template(
    peer: DingTalkPeer, redis_url: str, data_dir: Path
) -> None:
    async with _kobot(peer, redis_url, data_dir, template=False):
        peer.push_chat(f"test steps guarded marker={MARKER}")
        assert await wait_until(lambda: len(_public_cards(peer, "Approval")) == 1, timeout=10)
        [(out_track_id, card)] = _public_cards(peer, "Approval")
        assert [label for label, _ in card.buttons()] == ["Approve", "Reject"]

        peer.click(out_track_id=out_track_id, user_id="staff-carol", label="Approve")

        assert await wait_until(lambda: peer.cards[out_track_id].buttons() == [], timeout=10)
        assert "approved" in peer.cards[out_track_id].params["markdown"]

        # The job's progress is a public card too (its title starts with the job number).
        assert await wait_until(lambda: len(_public_cards(peer, "Job ")) == 1, timeout=10)
        assert peer.requests_to("/v1.0/robot/groupMessages/send") == []


def _posted_texts(peer: DingTalkPeer) -> list[str]:
    """Every markdown text kobot posted as a message (session webhook or robot API), oldest first."""
    texts = [r.body["markdown"]["text"] for r in peer.requests_to("/robot/sendBySession")]
    texts += [
        json.loads(r.body["msgParam"])["text"] for r in peer.requests_to("/v1.0/robot/groupMessages/send")
    ]
    return texts


def _said(peer: DingTalkPeer, *parts: str) -> bool:
    return any(all(part in text for part in parts) for text in _posted_texts(peer))


async def test_peer_e2e_cancel_button_on_the_public_card(
    peer: DingTalkPeer, redis_url: str, data_dir: Path
) -> None:
    async with _kobot(peer, redis_url, data_dir, template=False):
        peer.push_chat("test slow demo seconds=60")

        def running() -> str | None:
            found = [
                k
                for k, c in _public_cards(peer, "Job ")
                if "Sleep" in c.params["markdown"] and "Cancel" in dict(c.buttons())
            ]
            return found[0] if found else None

        assert await wait_until(lambda: running() is not None, timeout=60, interval=0.1)
        out_track_id = running()
        assert out_track_id is not None
        card = peer.cards[out_track_id]
        [(label, params)] = card.buttons()
        assert (label, params["action_id"]) == ("Cancel", "job.cancel")
        job_id = params["value"].partition(".")[0]

        peer.push_card_click(
            out_track_id=out_track_id,
            user_id="staff-alice",
            params={"action_id": "job.cancel", "value": f"{job_id}.{'f' * 64}"},
        )
        assert await wait_until(
            lambda: _said(peer, "Not cancelled", f"not issued for job {job_id}"), timeout=10
        )
        peer.click(out_track_id=out_track_id, user_id="staff-dave", label="Cancel")
        assert await wait_until(lambda: _said(peer, "Not allowed"), timeout=10)
        [refusal] = [text for text in _posted_texts(peer) if "Not allowed" in text]
        assert len(refusal.split("\n\n")) > 1, "the refusal gives the policy's reason"
        assert dict(peer.cards[out_track_id].buttons()), "refused clicks leave the job running"

        peer.click(out_track_id=out_track_id, user_id="staff-alice", label="Cancel")
        assert await wait_until(lambda: _said(peer, f"Cancelling job {job_id}"), timeout=10)
        assert await wait_until(
            lambda: "cancelled" in peer.cards[out_track_id].params["markdown"], timeout=60
        )
        assert peer.cards[out_track_id].buttons() == []
