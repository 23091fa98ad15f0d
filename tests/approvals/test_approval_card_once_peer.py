"""An approval card shows once in each conversation, through the Slack peer: the channel the request was
typed in holds the card with buttons, and is not sent the cluster's approval notice too though it is
subscribed to it (`notify guarded approvals here`); another subscribed channel gets the notice once."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from bot.app import create_app
from kobot.settings import Settings
from tests.peers.slack import PeerMessage, SlackPeer
from tests.support.asgi import in_process
from tests.support.slack import post_mention, running_slack_peer, settings_for
from tests.support.waiting import eventually

POLICY = """
version: 1
bindings:
  - role: operator
    subjects: ["slack:U0ALICE"]
  - role: admin
    subjects: ["slack:U0BOB"]
approvals:
  - commands: ["test.steps"]
    clusters: ["guarded"]
    approvals: 1
    approver_role: admin
"""
ASKED_IN = "C0OPS"
ELSEWHERE = "C0OTHER"


@pytest.fixture
def signing_secret() -> str:
    return secrets.token_hex(16)


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    with running_slack_peer() as running:
        yield running


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
    )
    async with in_process(create_app(settings)) as client:
        yield client


async def mention(
    kobot: httpx.AsyncClient, secret: str, text: str, *, channel: str, user: str = "U0ALICE"
) -> str:
    return await post_mention(kobot, signing_secret=secret, text=text, user=user, channel=channel)


def approval_cards(peer: SlackPeer, channel: str) -> list[PeerMessage]:
    return [m for m in peer.posted() if m.channel == channel and "test steps guarded" in m.text]


def has_buttons(message: PeerMessage) -> bool:
    return any(block["type"] == "actions" for block in message.blocks)


async def test_peer_approval_card_once_in_the_subscribed_channel_it_was_asked_in_and_once_elsewhere(
    kobot: httpx.AsyncClient, peer: SlackPeer, signing_secret: str, tmp_path: Path
) -> None:
    for channel in (ASKED_IN, ELSEWHERE):
        said = await mention(kobot, signing_secret, "notify guarded approvals here", channel=channel)
        await eventually(lambda ts=said: any(m.thread_ts == ts for m in peer.posted()), what="the answer")
    marker = tmp_path / "marker"
    marker.write_text("present")
    await mention(kobot, signing_secret, f"test steps guarded marker={marker}", channel=ASKED_IN)

    await eventually(lambda: approval_cards(peer, ELSEWHERE), timeout=20, what="the other channel's notice")
    [notice] = approval_cards(peer, ELSEWHERE)
    assert not has_buttons(notice), "clicks count only where the request was asked"
    # the notice to the other channel and one to the asking channel are queued as one: had the asking
    # channel been sent it, it would be there by now
    [card] = approval_cards(peer, ASKED_IN)
    assert has_buttons(card)
