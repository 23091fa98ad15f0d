"""Sending through wechatpy and aiohttp to the local WeCom peer, over a real socket."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from redis import Redis

from bot.chat.wecom.adapter import WeComAdapter
from kobot.conversations import Conversation
from kobot.errors import DeliveryError
from kobot.messages import Button, MessageKind, OutgoingMessage, Progress, Tone
from kobot.settings_wecom import WeComSettings
from tests.chat import samples
from tests.peers.wecom import WeComPeer
from tests.support.wecom import settings_for


def conv(conversation_id: str) -> Conversation:
    return Conversation(platform="wecom", conversation_id=conversation_id)


async def test_peer_markdown_to_a_user_with_one_token_for_many_sends(
    adapter: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    ref = await adapter.send(conv("user:alice"), samples.COMMAND_REPLY)
    await adapter.send(conv("user:alice"), samples.HELP)
    sends = [s for s in wecom_peer.sent if s.api == "message/send"]
    assert [s.payload["msgtype"] for s in sends] == ["markdown", "markdown"]
    assert sends[0].payload["touser"] == "alice"
    assert sends[0].payload["agentid"] == wecom_peer.agent_id
    assert "prod" in sends[0].payload["markdown"]["content"]
    assert wecom_peer.tokens_issued == 1
    assert ref.conversation_id == "user:alice" and ref.message_id


async def test_peer_expired_token_is_refreshed_and_the_message_still_delivered(
    adapter: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    await adapter.send(conv("user:alice"), samples.COMMAND_REPLY)
    wecom_peer.expire_tokens()
    await adapter.send(conv("user:alice"), samples.HELP)
    assert wecom_peer.tokens_issued == 2
    calls = wecom_peer.requests_to("message/send")
    assert len(calls) == 3  # the refused one and its retry
    assert len([s for s in wecom_peer.sent if s.api == "message/send"]) == 2


async def test_peer_token_is_shared_through_redis_between_processes(
    wecom_settings: WeComSettings, redis: Redis, wecom_peer: WeComPeer
) -> None:
    first = WeComAdapter(settings=wecom_settings, redis=redis)
    second = WeComAdapter(settings=wecom_settings, redis=redis)
    await first.send(conv("user:alice"), samples.HELP)
    await second.send(conv("user:bob"), samples.HELP)
    assert wecom_peer.tokens_issued == 1
    keys = [k.decode() for k in redis.keys("kobot:wecom:session:*")]
    assert keys and all(wecom_settings.secret.get_secret_value()[:10] not in k for k in keys)
    await first.stop()
    await second.stop()


async def test_peer_wrong_secret_is_a_delivery_error_not_a_loop(wecom_peer: WeComPeer, redis: Redis) -> None:
    settings = settings_for(wecom_peer).model_copy(update={"secret": SecretStr("wrong")})
    adapter = WeComAdapter(settings=settings, redis=redis)
    with pytest.raises(DeliveryError, match="errcode 40001"):
        await adapter.send(conv("user:alice"), samples.HELP)
    assert len(wecom_peer.requests_to("gettoken")) <= 2
    await adapter.stop()


async def test_peer_5xx_is_a_delivery_error_the_caller_can_retry(
    adapter: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    await adapter.send(conv("user:alice"), samples.HELP)
    wecom_peer.fail_next(1, status=503)
    with pytest.raises(DeliveryError, match="HTTP 503"):
        await adapter.send(conv("user:alice"), samples.HELP)
    await adapter.send(conv("user:alice"), samples.HELP)
    assert len([s for s in wecom_peer.sent if s.api == "message/send"]) == 2


async def test_peer_long_markdown_is_split_under_the_app_limit_of_2048_bytes(
    adapter: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    body = "\n".join(f"node-{i:03d} 正常运行 Ready " + "·" * 40 for i in range(120))
    await adapter.send(conv("user:alice"), OutgoingMessage(title="nodes", body=body))
    contents = [s.payload["markdown"]["content"] for s in wecom_peer.sent]
    assert len(contents) > 1
    assert all(len(c.encode()) <= 2048 for c in contents)
    assert "node-000" in contents[0] and "node-119" in "".join(contents)


async def test_peer_buttons_become_a_card_and_a_click_maps_back_a_long_value(
    adapter: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    long_value = "ap9.approve." + "s" * 2000
    message = OutgoingMessage(
        title="Approve?",
        buttons=(
            Button(label="Approve", action_id="approval.approve", value=long_value),
            Button(label="Reject", action_id="approval.reject", value="ap9.reject.sig"),
        ),
    )
    ref = await adapter.send(conv("user:alice"), message)
    card = wecom_peer.sent[0].payload["template_card"]
    keys = [b["key"] for b in card["button_list"]]
    assert card["task_id"] == ref.message_id
    assert keys[1] == "ap9.reject.sig"
    assert len(keys[0].encode()) <= 1024 and keys[0] != long_value
    button = adapter.state.card_button(task_id=ref.message_id, key=keys[0])
    assert button is not None and button.value == long_value and button.action_id == "approval.approve"


async def test_peer_a_card_is_updated_once_then_follow_ups_are_posted(
    adapter: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    ref = await adapter.send(conv("user:alice"), samples.APPROVAL_REQUEST)
    decided = await adapter.update(ref, samples.APPROVAL_DECIDED)
    assert decided.message_id == ref.message_id
    update = [s for s in wecom_peer.sent if s.api == "message/update_template_card"]
    assert len(update) == 1
    assert update[0].payload["template_card"]["replace_text"].startswith("approved by Bob")
    assert update[0].payload["userids"] == ["alice"]
    again = samples.APPROVAL_DECIDED.model_copy(update={"status": "job 43 succeeded"})
    follow = await adapter.update(decided, again)
    assert follow.message_id != ref.message_id
    assert wecom_peer.sent[-1].api == "message/send"
    assert wecom_peer.sent[-1].payload["msgtype"] == "markdown"


async def test_peer_progress_posts_a_message_per_stage_not_per_edit(
    adapter: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    ref = await adapter.send(conv("user:alice"), samples.PROGRESS_START)
    for task in ("gather facts", "swap is off", "ports free"):
        progress = Progress(step=1, total=4, step_title="Render inventory", task=task)
        ref = await adapter.update(ref, samples.PROGRESS_MIDDLE.model_copy(update={"progress": progress}))
    assert len(wecom_peer.sent) == 1
    ref = await adapter.update(ref, samples.PROGRESS_MIDDLE)
    assert len(wecom_peer.sent) == 2
    ref = await adapter.update(ref, samples.PROGRESS_DONE)
    ref = await adapter.update(ref, samples.PROGRESS_DONE)
    assert len(wecom_peer.sent) == 3
    assert "succeeded" in wecom_peer.sent[-1].payload["markdown"]["content"]


async def test_peer_app_group_chat_created_and_posted_to(
    adapter: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    client = adapter.api.client
    created = await adapter.api.call(
        lambda: client.appchat.create(
            chat_id="kobotops", name="kobot ops", owner="alice", user_list=["alice", "bob"]
        ),
        what="a group chat",
    )
    assert created["chatid"] == "kobotops"
    await adapter.send(conv("appchat:kobotops"), samples.APPROVAL_REQUEST)
    [sent] = [s for s in wecom_peer.sent if s.api == "appchat/send"]
    assert sent.target == "kobotops"
    assert "`[1] Approve`" in sent.payload["markdown"]["content"]


async def test_peer_app_group_chat_gets_a_jobs_cancel_as_a_command_not_a_card_per_member(
    adapter: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    """A group chat cannot carry cards: an approval is worth one to each member, a job's Cancel on every
    progress stage is not (members' message budgets are small); the group is told what to type."""
    wecom_peer.add_chat("kobotops", ["alice", "bob"])
    cancel = Button(label="Cancel", action_id="job.cancel", value="7.sig", typed="cancel job 7")
    progress = OutgoingMessage(
        kind=MessageKind.PROGRESS,
        title="Job 7 · test slow demo",
        tone=Tone.RUNNING,
        progress=Progress(step=2, total=2, step_title="Sleep"),
        buttons=(cancel,),
    )
    await adapter.send(conv("appchat:kobotops"), progress)
    assert [s.api for s in wecom_peer.sent] == ["appchat/send"]
    content = wecom_peer.sent[0].payload["markdown"]["content"]
    assert "`Cancel: cancel job 7`" in content and "[1]" not in content and "one-to-one" not in content
    await adapter.send(conv("appchat:kobotops"), samples.APPROVAL_REQUEST)
    assert [s.api for s in wecom_peer.sent] == ["appchat/send", "appchat/send", "message/send"]


async def test_peer_group_robot_webhook_posts_and_a_bad_key_says_so(
    wecom_peer: WeComPeer, redis: Redis
) -> None:
    settings = settings_for(wecom_peer, robot_webhooks={"ops": SecretStr("not-a-key")})
    adapter = WeComAdapter(settings=settings, redis=redis)
    await adapter.send(conv("robot:default"), samples.ALERT_FIRING)
    assert wecom_peer.sent[-1].api == "webhook/send"
    assert wecom_peer.sent[-1].payload["msgtype"] == "markdown"
    with pytest.raises(DeliveryError, match="93000") as refused:
        await adapter.send(conv("robot:ops"), samples.ALERT_RESOLVED)
    assert "not-a-key" not in refused.value.user_message
    with pytest.raises(DeliveryError, match="no WeCom group robot named 'nope'"):
        await adapter.send(conv("robot:nope"), samples.ALERT_RESOLVED)
    await adapter.stop()


async def test_peer_robot_5xx_carries_no_key_and_can_be_retried(
    adapter: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    wecom_peer.fail_next(1, status=502)
    with pytest.raises(DeliveryError, match="HTTP 502") as failed:
        await adapter.send(conv("robot:default"), samples.ALERT_RESOLVED)
    assert wecom_peer.robot_key not in str(failed.value)
    await adapter.send(conv("robot:default"), samples.ALERT_RESOLVED)
    assert wecom_peer.sent[-1].api == "webhook/send"


async def test_unknown_conversation_kind_is_refused_clearly(adapter: WeComAdapter) -> None:
    with pytest.raises(DeliveryError, match="not a WeCom conversation id"):
        await adapter.send(conv("channel:x"), samples.HELP)


async def test_peer_smart_bot_group_without_reply_url_uses_its_route_or_says_how(
    wecom_peer: WeComPeer, redis: Redis
) -> None:
    settings = settings_for(wecom_peer, smart_bot_routes={"wrgroup1": "robot:default"})
    adapter = WeComAdapter(settings=settings, redis=redis)
    ref = await adapter.send(conv("smartbot:wrgroup1"), samples.PROGRESS_START)
    assert wecom_peer.sent[-1].api == "webhook/send"
    assert ref.conversation_id == "smartbot:wrgroup1"
    with pytest.raises(DeliveryError, match="SMART_BOT_ROUTES"):
        await adapter.send(conv("smartbot:wrgroup2"), samples.PROGRESS_START)
    await adapter.stop()


async def test_peer_slow_answer_still_does_not_block_the_event_loop(
    adapter: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    import asyncio

    await adapter.send(conv("user:alice"), samples.HELP)
    wecom_peer.slow(0.3)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await adapter.send(conv("user:alice"), samples.HELP)
    ticker.cancel()
    assert ticks >= 10  # the loop kept running while wechatpy waited in its thread


async def test_peer_debug_logs_carry_no_secret_token_or_key(
    adapter: WeComAdapter, wecom_peer: WeComPeer, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    with caplog.at_level(logging.DEBUG):
        await adapter.send(conv("user:alice"), samples.HELP)
        wecom_peer.expire_tokens()
        await adapter.send(conv("user:alice"), samples.HELP)
        await adapter.send(conv("robot:default"), samples.HELP)
    token = adapter.api.client.access_token
    assert "gettoken" in caplog.text  # urllib3 did log the calls...
    for secret in (wecom_peer.secret, token, wecom_peer.robot_key):
        assert secret not in caplog.text  # ...without what their query strings carried


async def test_peer_gone_is_a_delivery_error(wecom_peer: WeComPeer, redis: Redis) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = settings_for(wecom_peer, api_base_url=f"http://127.0.0.1:{closed_port}/cgi-bin/")
    adapter = WeComAdapter(settings=settings, redis=redis)
    with pytest.raises(DeliveryError, match="did not take a message"):
        await adapter.send(conv("user:alice"), samples.HELP)
    with pytest.raises(DeliveryError, match="did not take group robot"):
        await adapter.send(conv("robot:default"), samples.HELP)
    await adapter.stop()
