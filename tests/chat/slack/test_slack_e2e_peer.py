"""kobot as deployed: `create_app(settings)` with Slack set up, signed callbacks in, the peer answering."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from redis import Redis

from bot.app import create_app
from bot.chat.slack.defaults import EVENTS_PATH
from kobot.audit import AuditLog
from kobot.settings import Settings
from tests.peers.slack import (
    PeerMessage,
    SlackPeer,
    block_actions,
    event_callback,
    form_body,
    interactive_body,
    mention_event,
    signed_headers,
    slash_command,
)
from tests.support.slack import settings_for
from tests.support.waiting import eventually

POLICY = """
version: 1
bindings:
  - role: operator
    subjects: ["slack:U0ALICE"]
  - role: admin
    subjects: ["slack:U0BOB"]
approvals:
  - commands: ["cluster.delete"]
    approvals: 1
    approver_role: admin
  - commands: ["test.steps"]
    clusters: ["guarded"]
    approvals: 1
    approver_role: admin
"""


@pytest.fixture
async def kobot(
    peer: SlackPeer, signing_secret: str, redis_url: str, data_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY)
    settings = Settings(
        policy_file=policy,
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        slack=settings_for(peer, signing_secret),
        playbooks_dir=Path("tests/fixtures/playbooks"),
        progress_edit_interval=0,
        plugins=["tests.fixtures.operations"],
        allow_local_hosts=True,  # the create test runs its job on this machine
    )
    app: FastAPI = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kobot.test") as client,
    ):
        yield client


async def signed_post(
    kobot: httpx.AsyncClient, secret: str, body: bytes, content_type: str
) -> httpx.Response:
    headers = {"Content-Type": content_type, **signed_headers(signing_secret=secret, body=body)}
    return await kobot.post(EVENTS_PATH, content=body, headers=headers)


async def mention(
    kobot: httpx.AsyncClient, secret: str, text: str, *, user: str = "U0ALICE"
) -> dict[str, Any]:
    event = mention_event(text=f"<@U0KOBOT> {text}", user=user)
    response = await signed_post(
        kobot, secret, json.dumps(event_callback(event)).encode(), "application/json"
    )
    assert response.status_code == 200
    return event


def thread_of(peer: SlackPeer, ts: str) -> list[PeerMessage]:
    return [m for m in peer.posted() if m.thread_ts == ts]


def finished(message: PeerMessage) -> bool:
    return message.text.startswith(("✅", "❌"))


async def test_peer_e2e_mention_gets_a_threaded_reply(
    kobot: httpx.AsyncClient, peer: SlackPeer, signing_secret: str
) -> None:
    event = await mention(kobot, signing_secret, "help")
    await eventually(lambda: thread_of(peer, event["ts"]))
    [reply] = thread_of(peer, event["ts"])
    assert reply.channel == "C0OPS"
    assert "create cluster" in reply.text


async def test_peer_e2e_slash_command_gets_a_reply_in_the_channel(
    kobot: httpx.AsyncClient, peer: SlackPeer, signing_secret: str
) -> None:
    response = await signed_post(
        kobot, signing_secret, form_body(slash_command(text="help")), "application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    await eventually(lambda: peer.posted())
    [reply] = peer.posted()
    assert (reply.channel, reply.thread_ts) == ("C0OPS", None)


async def test_peer_e2e_job_progress_is_one_message_edited_to_the_end(
    kobot: httpx.AsyncClient, peer: SlackPeer, signing_secret: str, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    marker.write_text("present")
    event = await mention(kobot, signing_secret, f"test steps demo marker={marker}")
    await eventually(lambda: any(finished(m) for m in thread_of(peer, event["ts"])), timeout=60)
    [progress] = thread_of(peer, event["ts"])
    assert progress.text.startswith("✅ Job")
    assert "succeeded" in progress.text
    shown = [edit["text"].splitlines()[0] for edit in progress.edits]
    assert any(line.startswith("⏳ Job") for line in shown)
    assert len(peer.requests_to("chat.postMessage")) == 1


async def test_peer_e2e_approval_click_reaches_the_dispatcher(
    kobot: httpx.AsyncClient, peer: SlackPeer, signing_secret: str, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    marker.write_text("present")
    event = await mention(kobot, signing_secret, f"test steps guarded marker={marker}")
    await eventually(lambda: thread_of(peer, event["ts"]))
    [card] = thread_of(peer, event["ts"])
    [actions] = [block for block in card.blocks if block["type"] == "actions"]
    approve = actions["elements"][0]
    click = block_actions(
        action_id=approve["action_id"], value=approve["value"], message_ts=card.ts, user="U0BOB"
    )
    response = await signed_post(
        kobot, signing_secret, interactive_body(click), "application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    await eventually(
        lambda: any(finished(m) and "Job" in m.text for m in thread_of(peer, event["ts"])), timeout=60
    )
    assert card.edits, "the approval card is edited once decided"
    assert "Bob Stone" in card.text
    assert not any(block["type"] == "actions" for block in card.blocks)


async def test_peer_e2e_forged_stale_and_replayed_requests_are_refused(
    kobot: httpx.AsyncClient, peer: SlackPeer, signing_secret: str
) -> None:
    body = json.dumps(event_callback(mention_event(text="<@U0KOBOT> help"))).encode()
    forged = {"Content-Type": "application/json", **signed_headers(signing_secret="wrong", body=body)}
    assert (await kobot.post(EVENTS_PATH, content=body, headers=forged)).status_code == 401
    stale = {
        "Content-Type": "application/json",
        **signed_headers(signing_secret=signing_secret, body=body, timestamp=int(time.time()) - 600),
    }
    assert (await kobot.post(EVENTS_PATH, content=body, headers=stale)).status_code == 401
    good = {"Content-Type": "application/json", **signed_headers(signing_secret=signing_secret, body=body)}
    assert (await kobot.post(EVENTS_PATH, content=body, headers=good)).status_code == 200
    assert (await kobot.post(EVENTS_PATH, content=body, headers=good)).status_code == 401
    await eventually(lambda: peer.posted())
    await asyncio.sleep(0.3)
    assert len(peer.posted()) == 1


async def test_peer_e2e_create_cluster_shows_one_progress_message_to_the_end(
    kobot: httpx.AsyncClient, peer: SlackPeer, signing_secret: str
) -> None:
    event = await mention(kobot, signing_secret, "create cluster prod masters=1 workers=0 hosts=localhost")
    await eventually(lambda: any(finished(m) for m in thread_of(peer, event["ts"])), timeout=90)
    jobs = [m for m in thread_of(peer, event["ts"]) if " Job " in m.text.splitlines()[0]]
    assert len(jobs) == 1, [m.text.splitlines()[0] for m in thread_of(peer, event["ts"])]
    [progress] = jobs
    assert progress.edits
    assert finished(progress)
    assert progress.text.splitlines()[0].endswith("create cluster prod")
    assert progress.edits[0]["ts"] == progress.ts


async def test_peer_e2e_lone_surrogates_get_a_real_answer_not_something_went_wrong(
    kobot: httpx.AsyncClient, peer: SlackPeer, signing_secret: str
) -> None:
    """`\\udfff` is valid JSON and Bolt decodes it to a lone surrogate; the parser, the audit write and
    the reply all used to fail on it ("Something went wrong"). Now the command is understood."""
    event = mention_event(text="<@U0KOBOT> list\udfff clusters")
    body = json.dumps(event_callback(event)).encode()
    assert b"\\udfff" in body
    response = await signed_post(kobot, signing_secret, body, "application/json")
    assert response.status_code == 200
    await eventually(lambda: thread_of(peer, event["ts"]))
    [reply] = thread_of(peer, event["ts"])
    assert reply.text.splitlines()[0] == "ℹ️ Clusters"


def cancel_button(message: PeerMessage) -> dict[str, Any] | None:
    """The Cancel button of a message as Slack shows it now, if it has one."""
    for block in message.blocks:
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            if element["action_id"].startswith("job.cancel"):
                return dict(element)
    return None


def replies_saying(peer: SlackPeer, *parts: str) -> list[PeerMessage]:
    return [m for m in peer.posted() if all(part in m.text for part in parts)]


async def test_peer_e2e_cancel_button_cancels_for_who_may_and_goes_when_the_job_ends(
    kobot: httpx.AsyncClient, peer: SlackPeer, signing_secret: str, redis_url: str
) -> None:
    peer.users["U0EVE"] = {"name": "eve", "real_name": "Eve Moss", "display_name": "", "email": None}
    event = await mention(kobot, signing_secret, "test slow demo seconds=60")

    def running() -> PeerMessage | None:
        jobs = [m for m in thread_of(peer, event["ts"]) if "step 2/2 Sleep" in m.text]
        return jobs[0] if jobs and cancel_button(jobs[0]) else None

    await eventually(running, timeout=60)
    progress = running()
    assert progress is not None
    button = cancel_button(progress)
    assert button is not None and button["text"]["text"] == "Cancel"
    job_id = button["value"].partition(".")[0]

    async def click(value: str, user: str) -> None:
        body = block_actions(action_id=button["action_id"], value=value, message_ts=progress.ts, user=user)
        response = await signed_post(
            kobot, signing_secret, interactive_body(body), "application/x-www-form-urlencoded"
        )
        assert response.status_code == 200

    await click(f"{job_id}.{'0' * 64}", "U0ALICE")
    await eventually(lambda: replies_saying(peer, "Not cancelled", f"not issued for job {job_id}"))
    await click(button["value"], "U0EVE")
    await eventually(lambda: replies_saying(peer, "Not allowed"))
    [refusal] = replies_saying(peer, "Not allowed")
    assert len(refusal.text.splitlines()) > 1, "the refusal gives the policy's reason"
    assert cancel_button(progress) is not None, "refused clicks leave the job running"

    await click(button["value"], "U0ALICE")
    await eventually(lambda: replies_saying(peer, f"Cancelling job {job_id}"))
    await eventually(lambda: "cancelled" in progress.text.splitlines()[1], timeout=60)
    assert progress.text.startswith("⚠️ Job")
    assert cancel_button(progress) is None
    assert not any(block["type"] == "actions" for block in progress.blocks)

    audit = AuditLog(redis=Redis.from_url(redis_url), store_url=redis_url)
    assert [e.actor for e in audit.query(action="job.cancel.refused")] == ["slack:U0ALICE"]
    assert [e.actor for e in audit.query(action="command.refused")] == ["slack:U0EVE"]
    assert {e.actor for e in audit.query(action="job.cancel.click")} == {"slack:U0ALICE", "slack:U0EVE"}
