"""kobot as deployed: `create_app(settings)` with WeCom configured, callbacks in, the peer receiving."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.app import create_app
from kobot.settings import Settings
from tests.peers.wecom import Sent, WeComPeer
from tests.support.asgi import in_process
from tests.support.waiting import eventually
from tests.support.wecom import settings_for

POLICY = """
version: 1
bindings:
  - role: operator
    subjects: ["wecom:alice"]
  - role: admin
    subjects: ["wecom:bob"]
approvals:
  - commands: ["test.steps"]
    clusters: ["guarded"]
    approvals: 1
    approver_role: admin
"""


@pytest.fixture
async def kobot(wecom_peer: WeComPeer, redis_url: str, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY)
    settings = Settings(
        policy_file=policy,
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        wecom=settings_for(wecom_peer, smart_bot_routes={"wrgroup1": "robot:default"}),
        playbooks_dir=Path("tests/fixtures/playbooks"),
        progress_edit_interval=0,
        plugins=["tests.fixtures.operations"],
        allow_local_hosts=True,  # the create test runs its job on this machine
    )
    async with in_process(create_app(settings)) as client:
        yield client


async def sent_where(peer: WeComPeer, count: int, *, seconds: float = 10.0) -> list[Sent]:
    for _ in range(int(seconds / 0.02)):
        if len(peer.sent) >= count:
            break
        await asyncio.sleep(0.02)
    return list(peer.sent)


async def test_peer_e2e_url_verification(kobot: httpx.AsyncClient, wecom_peer: WeComPeer) -> None:
    answer = await kobot.get(f"/wecom/callback?{wecom_peer.callback_url_check(echostr='987654')}")
    assert answer.status_code == 200 and answer.text == "987654"


async def test_peer_e2e_a_message_gets_a_reply(kobot: httpx.AsyncClient, wecom_peer: WeComPeer) -> None:
    query, body = wecom_peer.callback_app(wecom_peer.text_xml(user_id="alice", content="help"))
    assert (await kobot.post(f"/wecom/callback?{query}", content=body)).status_code == 200
    await eventually(lambda: "create cluster" in "".join(contents(wecom_peer)), timeout=10, what="the help")
    assert all(s.api == "message/send" and s.target == "alice" for s in wecom_peer.sent)
    # the help is longer than one app markdown message may be (2,048 bytes): it comes in parts that fit
    assert all(len(c.encode()) <= 2048 for c in contents(wecom_peer))


async def test_peer_e2e_expired_token_refreshed_and_reply_delivered(
    kobot: httpx.AsyncClient, wecom_peer: WeComPeer
) -> None:
    query, body = wecom_peer.callback_app(wecom_peer.text_xml(user_id="alice", content="list clusters"))
    await kobot.post(f"/wecom/callback?{query}", content=body)
    await sent_where(wecom_peer, 1)
    wecom_peer.expire_tokens()
    query, body = wecom_peer.callback_app(wecom_peer.text_xml(user_id="alice", content="list clusters"))
    await kobot.post(f"/wecom/callback?{query}", content=body)
    sent = await sent_where(wecom_peer, 2)
    assert len(sent) == 2
    assert wecom_peer.tokens_issued == 2


async def test_peer_e2e_forged_stale_and_replayed_callbacks_are_refused(
    kobot: httpx.AsyncClient, wecom_peer: WeComPeer
) -> None:
    query, body = wecom_peer.callback_app(wecom_peer.text_xml(user_id="alice", content="list clusters"))
    forged = query.replace("msg_signature=", "msg_signature=1")
    assert (await kobot.post(f"/wecom/callback?{forged}", content=body)).status_code == 403
    assert (await kobot.post(f"/wecom/callback?{query}", content=body)).status_code == 200
    assert (await kobot.post(f"/wecom/callback?{query}", content=body)).status_code == 403
    stale_q, stale_b = wecom_peer.callback_app(
        wecom_peer.text_xml(user_id="alice", content="list clusters"), timestamp=int(time.time()) - 3600
    )
    assert (await kobot.post(f"/wecom/callback?{stale_q}", content=stale_b)).status_code == 403
    await asyncio.sleep(0.3)
    assert len(await sent_where(wecom_peer, 1)) == 1


async def say(kobot: httpx.AsyncClient, peer: WeComPeer, text: str, *, user: str = "alice") -> None:
    query, body = peer.callback_app(peer.text_xml(user_id=user, content=text))
    assert (await kobot.post(f"/wecom/callback?{query}", content=body)).status_code == 200


def contents(peer: WeComPeer) -> list[str]:
    return [s.payload["markdown"]["content"] for s in peer.sent if s.payload.get("msgtype") == "markdown"]


def card_text(card: dict[str, Any]) -> str:
    """A template card as its reader sees it, first line marked up like markdown's bold title."""
    title = card["main_title"]
    lines = [f"**{title['title']}**", title.get("desc", ""), card.get("sub_title_text", "")]
    return "\n".join(line for line in lines if line)


def shown(peer: WeComPeer) -> list[str]:
    """Every markdown message, card and card update kobot sent, oldest first, as text."""
    texts = []
    for sent in peer.sent:
        if sent.payload.get("msgtype") == "markdown":
            texts.append(sent.payload["markdown"]["content"])
        elif "template_card" in sent.payload:
            texts.append(card_text(sent.payload["template_card"]))
    return texts


def job_messages(peer: WeComPeer) -> list[str]:
    """A job's messages: markdown, or cards while the job can still be cancelled."""
    return [c for c in shown(peer) if " Job " in c.splitlines()[0]]


def cards_of_jobs(peer: WeComPeer) -> list[Sent]:
    return [
        s
        for s in peer.sent
        if "template_card" in s.payload and " Job " in s.payload["template_card"]["main_title"]["title"]
    ]


def finished(text: str) -> bool:
    return text.startswith(("**✅", "**❌"))


async def test_peer_e2e_job_progress_is_a_message_per_stage_to_the_end(
    kobot: httpx.AsyncClient, wecom_peer: WeComPeer, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    marker.write_text("present")
    await say(kobot, wecom_peer, f"test steps demo marker={marker}")
    await eventually(
        lambda: any(finished(c) for c in job_messages(wecom_peer)), timeout=60, what="the expected messages"
    )
    stages = job_messages(wecom_peer)
    assert stages[-1].startswith("**✅ Job") and "succeeded" in stages[-1]
    assert any(c.startswith("**⏳ Job") for c in stages)
    steps = [line for c in stages for line in c.splitlines() if " step " in line]
    numbers = [line.split(" step ")[1].split(" ")[0] for line in steps]
    assert len(numbers) == len(set(numbers)), f"one message per step, not per edit: {numbers}"
    assert all(s.api in ("message/send", "message/update_template_card") for s in wecom_peer.sent)
    # while it runs, each stage is a card with a live Cancel button; the final state has none
    for sent in wecom_peer.sent:
        card = sent.payload.get("template_card")
        if card is None:
            assert finished(sent.payload["markdown"]["content"])
            continue
        keys = [button["key"] for button in card["button_list"]]
        if card.get("replace_text"):  # the final state, shown in place of the card: spent buttons only
            assert finished(card_text(card)) and all(key.startswith("spent-") for key in keys)
        else:
            assert card_text(card).startswith("**⏳ Job") and len(keys) == 1
            assert [button["text"] for button in card["button_list"]] == ["Cancel"]
            assert not keys[0].startswith("spent-")
    assert wecom_peer.dropped == []  # every stage reached alice: none past WeCom's per-person budget


async def test_peer_e2e_create_cluster_reaches_its_final_state(
    kobot: httpx.AsyncClient, wecom_peer: WeComPeer
) -> None:
    await say(kobot, wecom_peer, "create cluster prod masters=1 workers=0 hosts=localhost")
    await eventually(
        lambda: any(finished(c) for c in job_messages(wecom_peer)), timeout=90, what="the expected messages"
    )
    stages = job_messages(wecom_peer)
    assert len([c for c in stages if finished(c)]) == 1
    assert len(stages) <= 1 + len({line for c in stages for line in c.splitlines() if " step " in line})


async def test_peer_e2e_group_approval_click_reaches_the_dispatcher(
    kobot: httpx.AsyncClient, wecom_peer: WeComPeer, tmp_path: Path
) -> None:
    """App cards live in one person's session; a second approver clicks in a smart-bot group."""
    marker = tmp_path / "marker"
    marker.write_text("present")
    mention = smart_bot_event(
        wecom_peer, user="alice", msgtype="text", text={"content": "@kobot test steps guarded"}
    )
    mention["text"] = {"content": f"@kobot test steps guarded marker={marker}"}
    query, body = wecom_peer.callback_smart_bot(mention)
    assert (await kobot.post(f"/wecom/smartbot?{query}", content=body)).status_code == 200
    await eventually(
        lambda: any(s.payload.get("msgtype") == "template_card" for s in wecom_peer.sent),
        timeout=10,
        what="the expected messages",
    )
    [card_sent] = [
        s
        for s in wecom_peer.sent
        if s.payload.get("msgtype") == "template_card"
        and "Approval" in s.payload["template_card"]["main_title"]["title"]
    ]
    assert card_sent.api == "smartbot/reply"
    card = card_sent.payload["template_card"]
    event = {
        "eventtype": "template_card_event",
        "template_card_event": {
            "card_type": "button_interaction",
            "event_key": card["button_list"][0]["key"],
            "task_id": card["task_id"],
        },
    }
    query, body = wecom_peer.callback_smart_bot(
        smart_bot_event(wecom_peer, user="bob", msgtype="event", event=event)
    )
    assert (await kobot.post(f"/wecom/smartbot?{query}", content=body)).status_code == 200
    await eventually(
        lambda: any(finished(c) for c in job_messages(wecom_peer)), timeout=60, what="the expected messages"
    )
    texts = contents(wecom_peer)
    # the approver is named as the contacts API names him, not by his userid
    assert any(c.startswith("**✅ Approved") and "approved by Bob Li" in c for c in texts), texts
    assert [s.api for s in wecom_peer.sent if " Job " in str(s.payload)][-1] == "webhook/send"


def smart_bot_event(peer: WeComPeer, *, user: str, msgtype: str, **fields: object) -> dict[str, object]:
    return {
        "msgid": f"m{time.time_ns()}",
        "aibotid": "aibkobot",
        "chatid": "wrgroup1",
        "chattype": "group",
        "from": {"userid": user},
        "response_url": peer.new_reply_url(),
        "msgtype": msgtype,
        **fields,
    }


async def test_peer_e2e_cancel_button_in_a_smart_bot_group(
    kobot: httpx.AsyncClient, wecom_peer: WeComPeer
) -> None:
    """The first stage is a card (the mention's reply link); later ones go through the group's robot,
    which cannot carry buttons and shows the command to type instead. A click in the group counts there."""
    mention = smart_bot_event(wecom_peer, user="alice", msgtype="text")
    mention["text"] = {"content": "@kobot test slow demo seconds=60"}
    query, body = wecom_peer.callback_smart_bot(mention)
    assert (await kobot.post(f"/wecom/smartbot?{query}", content=body)).status_code == 200
    await eventually(lambda: cards_of_jobs(wecom_peer), timeout=30, what="the job's card")
    [sent] = cards_of_jobs(wecom_peer)
    assert sent.api == "smartbot/reply"
    card = sent.payload["template_card"]
    [button] = card["button_list"]
    assert button["text"] == "Cancel"
    job_id = card["main_title"]["title"].split(" Job ")[1].split(" ")[0]
    await eventually(
        lambda: any("step 2/2 Sleep" in c for c in contents(wecom_peer)), timeout=60, what="the sleep step"
    )
    [robot_stage] = [c for c in contents(wecom_peer) if "step 2/2 Sleep" in c]
    assert f"`Cancel: cancel job {job_id}`" in robot_stage, "where nothing can be clicked, what to type"

    async def click(user: str) -> None:
        event = {
            "eventtype": "template_card_event",
            "template_card_event": {
                "card_type": "button_interaction",
                "event_key": button["key"],
                "task_id": card["task_id"],
            },
        }
        query, body = wecom_peer.callback_smart_bot(
            smart_bot_event(wecom_peer, user=user, msgtype="event", event=event)
        )
        assert (await kobot.post(f"/wecom/smartbot?{query}", content=body)).status_code == 200

    await click("dave")
    await eventually(lambda: any("Not allowed" in c for c in shown(wecom_peer)), what="the refusal")
    [refusal] = [c for c in shown(wecom_peer) if "Not allowed" in c]
    assert len(refusal.splitlines()) > 1, "the refusal gives the policy's reason"
    assert not any(finished(c) for c in job_messages(wecom_peer))

    await click("alice")
    await eventually(lambda: any(f"Cancelling job {job_id}" in c for c in shown(wecom_peer)), what="cancel")
    await eventually(
        lambda: any(finished(c) or c.startswith("**⚠️ Job") for c in job_messages(wecom_peer)),
        timeout=60,
        what="the final state",
    )
    final = job_messages(wecom_peer)[-1]
    assert "cancelled" in final and "Cancel:" not in final and "[1]" not in final


async def test_peer_e2e_cancel_button_in_an_app_session_and_a_forged_key(
    kobot: httpx.AsyncClient, wecom_peer: WeComPeer
) -> None:
    """WeCom sends back only the button's key; the signed value stays with kobot. A key kobot never
    issued is refused (nothing is cancelled); the card's own key cancels, and the job ends without one."""
    await say(kobot, wecom_peer, "test slow demo seconds=60")
    await eventually(lambda: cards_of_jobs(wecom_peer), timeout=30, what="the job's card")
    card = cards_of_jobs(wecom_peer)[-1].payload["template_card"]
    [button] = card["button_list"]
    job_id = card["main_title"]["title"].split(" Job ")[1].split(" ")[0]

    async def click(key: str) -> None:
        xml = wecom_peer.card_click_xml(user_id="alice", task_id=card["task_id"], key=key)
        query, body = wecom_peer.callback_app(xml)
        assert (await kobot.post(f"/wecom/callback?{query}", content=body)).status_code == 200

    await click(button["key"] + "x")
    await eventually(lambda: any("button has expired" in c for c in shown(wecom_peer)), what="the refusal")
    assert not any(f"Cancelling job {job_id}" in c for c in shown(wecom_peer))

    await click(button["key"])
    await eventually(lambda: any(f"Cancelling job {job_id}" in c for c in shown(wecom_peer)), what="cancel")
    await eventually(
        lambda: any(c.startswith("**⚠️ Job") for c in job_messages(wecom_peer)),
        timeout=60,
        what="the final state",
    )
    [final] = [s for s in wecom_peer.sent if " Job " in str(s.payload) and "cancelled" in str(s.payload)]
    final_card = final.payload.get("template_card")
    if final_card is not None:  # shown in place of the clicked card: its buttons are spent
        assert all(b["key"].startswith("spent-") for b in final_card["button_list"])
