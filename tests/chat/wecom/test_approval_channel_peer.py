"""A request asked in a one-to-one app chat reaches the cluster's approval channel, and a click there counts.

An app's one-to-one session holds the requester alone, so no other approver could ever click its card.
The cluster's approval channel here is an app group chat (subscribed with `notify guarded approvals here`);
app group chats cannot carry cards, so its members get the card one-to-one and a click on it counts as a
click in the group, with every check a click gets anywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from redis import Redis

from alerts.subscriptions import ClusterEvent, NotifySubscription, save_notify_subscription
from bot.app import create_app
from bot.chat.wecom.adapter import WeComAdapter
from kobot.conversations import Conversation
from kobot.settings import Settings
from kobot.settings_alerts import RouteTarget
from tests.chat import samples
from tests.chat.sinks import RecordingSink
from tests.chat.wecom.test_e2e_peer import POLICY, contents, finished, job_messages, say
from tests.peers.wecom import Sent, WeComPeer
from tests.support.asgi import in_process
from tests.support.waiting import eventually
from tests.support.wecom import settings_for

CHANNEL = "kobotops"
APPROVAL = samples.APPROVAL_REQUEST


@pytest.fixture
async def kobot(
    wecom_peer: WeComPeer, redis_url: str, redis: Redis, data_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY)
    wecom_peer.add_chat(CHANNEL, ["alice", "bob", "carol"])
    subscription = NotifySubscription(
        target=RouteTarget(platform="wecom", conversation_id=f"appchat:{CHANNEL}"),
        cluster="guarded",
        events=(ClusterEvent.APPROVAL_NEEDED,),
    )
    save_notify_subscription(redis, subscription)
    settings = Settings(
        policy_file=policy,
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        wecom=settings_for(wecom_peer),
        playbooks_dir=Path("tests/fixtures/playbooks"),
        progress_edit_interval=0,
        plugins=["tests.fixtures.operations"],
    )
    async with in_process(create_app(settings)) as client:
        yield client


def cards(peer: WeComPeer) -> list[Sent]:
    return [s for s in peer.sent if s.payload.get("msgtype") == "template_card"]


async def click(kobot: httpx.AsyncClient, peer: WeComPeer, *, user: str, card: Sent, button: int) -> None:
    template = card.payload["template_card"]
    key = template["button_list"][button]["key"]
    query, body = peer.callback_app(peer.card_click_xml(user_id=user, task_id=template["task_id"], key=key))
    assert (await kobot.post(f"/wecom/callback?{query}", content=body)).status_code == 200


async def test_peer_one_to_one_request_is_approved_from_the_clusters_app_group_chat(
    kobot: httpx.AsyncClient, wecom_peer: WeComPeer, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    marker.write_text("present")
    await say(kobot, wecom_peer, f"test steps guarded marker={marker}")
    await eventually(lambda: len(cards(wecom_peer)) == 2, timeout=20, what="the card and the channel's card")
    own, channel = sorted(cards(wecom_peer), key=lambda s: s.target.count("|"))
    assert own.target == "alice"
    assert sorted(channel.target.split("|")) == ["alice", "bob", "carol"]
    [notice] = [s for s in wecom_peer.sent if s.api == "appchat/send"]
    assert notice.target == CHANNEL and "guarded" in notice.payload["markdown"]["content"]

    # the card in alice's own session is hers: bob clicking it (a forwarded card) still does not count
    await click(kobot, wecom_peer, user="bob", card=own, button=0)
    await eventually(
        lambda: any("another conversation" in c for c in contents(wecom_peer)), timeout=10, what="the refusal"
    )
    # carol is in the channel but holds no admin role on guarded: the same checks as anywhere
    await click(kobot, wecom_peer, user="carol", card=channel, button=0)
    refused = "admin role on guarded"
    await eventually(lambda: any(refused in c for c in contents(wecom_peer)), timeout=10, what="the refusal")
    assert not job_messages(wecom_peer)

    await click(kobot, wecom_peer, user="bob", card=channel, button=0)
    await eventually(
        lambda: any(finished(c) for c in job_messages(wecom_peer)), timeout=60, what="the job's outcome"
    )
    # alice's own card is updated once (its response code), naming the approver as the contacts API does
    [decided] = [
        s
        for s in wecom_peer.sent
        if s.api == "message/update_template_card"
        and " Job " not in s.payload["template_card"]["main_title"]["title"]  # the job's own card, edited
    ]
    assert decided.payload["userids"] == ["alice"]
    assert "approved by Bob Li" in decided.payload["template_card"]["replace_text"]
    assert [c for c in job_messages(wecom_peer) if finished(c)][-1].startswith("**✅ Job")


async def test_peer_smart_bot_group_routed_to_an_app_group_chat_counts_clicks_in_the_smart_bot_group(
    wecom_peer: WeComPeer, redis: Redis, sink: RecordingSink
) -> None:
    """`@kobot notify guarded approvals here` in a smart-bot group subscribes `smartbot:<chatid>`; with no
    reply link at hand its route (an app group chat) carries the request, and a click counts in the group
    that subscribed."""
    wecom_peer.add_chat(CHANNEL, ["alice", "bob"])
    settings = settings_for(wecom_peer, smart_bot_routes={"wrgroup1": f"appchat:{CHANNEL}"})
    adapter = WeComAdapter(settings=settings, redis=redis)
    await adapter.start(sink)
    ref = await adapter.send(Conversation(platform="wecom", conversation_id="smartbot:wrgroup1"), APPROVAL)
    assert ref.conversation_id == "smartbot:wrgroup1"
    [card] = cards(wecom_peer)
    template = card.payload["template_card"]
    key = template["button_list"][0]["key"]
    query, body = wecom_peer.callback_app(
        wecom_peer.card_click_xml(user_id="bob", task_id=template["task_id"], key=key)
    )
    routes = FastAPI()
    routes.include_router(adapter.router())
    transport = httpx.ASGITransport(app=routes)
    async with httpx.AsyncClient(transport=transport, base_url="http://kobot.test") as client:
        assert (await client.post(f"/wecom/callback?{query}", content=body)).status_code == 200
    await eventually(lambda: sink.clicks, timeout=5, what="the click")
    [clicked] = sink.clicks
    assert clicked.conversation.conversation_id == "smartbot:wrgroup1" and not clicked.conversation.is_direct
    assert (clicked.identity.user_id, clicked.identity.display_name) == ("bob", "Bob Li")
    assert clicked.value == APPROVAL.buttons[0].value
    await adapter.stop()
