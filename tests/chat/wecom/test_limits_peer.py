"""WeCom's budgets and rate errcodes, as the peer models them from its documentation, and kobot under them.

message/send drops, without an error, what exceeds 30 messages a minute or 1,000 an hour to one person;
group robots answer 45009 past 20 a minute; any API may answer 45009/45011/45033. kobot paces itself so
nothing is dropped, and waits rate errcodes out in place so no part of a split message is posted twice.
"""

from __future__ import annotations

import pytest
from redis import Redis

from bot.chat.wecom import defaults
from bot.chat.wecom.adapter import WeComAdapter
from bot.chat.wecom.outbound import USER_BUDGET
from kobot.conversations import Conversation
from kobot.errors import DeliveryError
from kobot.messages import OutgoingMessage
from tests.chat import samples
from tests.peers.wecom import WeComPeer


def conv(conversation_id: str) -> Conversation:
    return Conversation(platform="wecom", conversation_id=conversation_id)


def note(index: int) -> OutgoingMessage:
    return OutgoingMessage(title=f"stage {index}")


async def test_peer_drops_silently_what_exceeds_30_a_minute_to_one_person(
    adapter: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    """The peer's side: unpaced sends past the budget are answered errcode 0 and never shown."""
    client, agent_id = adapter.api.client, wecom_peer.agent_id
    msg = {"msgtype": "markdown", "markdown": {"content": "hello"}}
    answers = [client.message.send(agent_id, "alice", msg=msg) for _ in range(32)]
    assert all(a["errcode"] == 0 for a in answers)
    assert len(wecom_peer.sent) == 30 and len(wecom_peer.dropped) == 2
    wecom_peer.clock.advance(61)
    client.message.send(agent_id, "alice", msg=msg)
    assert len(wecom_peer.sent) == 31  # a minute later the budget is back


async def test_peer_kobot_paces_a_burst_to_one_person_and_nothing_is_dropped(
    paced: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    before = wecom_peer.now()
    for index in range(45):
        await paced.send(conv("user:alice"), note(index))
    assert wecom_peer.dropped == []
    assert [s.payload["markdown"]["content"].splitlines()[0] for s in wecom_peer.sent] == [
        f"**ℹ️ stage {index}**" for index in range(45)
    ]
    assert wecom_peer.now() - before >= 60  # the 31st waited for the minute to pass
    await paced.send(conv("user:bob"), note(0))  # another person's budget is their own
    assert wecom_peer.sent[-1].target == "bob"


async def test_peer_spent_hourly_budget_is_a_retryable_delivery_error_not_a_drop(
    paced: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    now = wecom_peer.now()
    for slot in range(34):  # another kobot process sent 1,000 earlier this hour, 30 every 63 s
        for _ in range(30):
            paced.state.reserve_send(recipient="user:alice", limits=USER_BUDGET, now=now - 2200 + slot * 63)
    with pytest.raises(DeliveryError, match="WeCom would drop") as refused:
        await paced.send(conv("user:alice"), note(0))
    # the oldest of the 1,000 leaves the hour in about 23 minutes: too long to hold the caller
    assert refused.value.retry_after is not None and refused.value.retry_after > 1300
    assert wecom_peer.sent == [] and wecom_peer.dropped == []


async def test_peer_rate_errcodes_are_waited_out_in_place_and_no_part_is_sent_twice(
    paced: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    body = "\n".join(f"node-{i:03d} Ready " + "·" * 40 for i in range(60))
    wecom_peer.throttle_next(1, errcode=45033, path="/cgi-bin/message/send")
    await paced.send(conv("user:alice"), note(0))
    first_parts = len(wecom_peer.sent)
    wecom_peer.throttle_next(2, errcode=45009, path="/cgi-bin/message/send")
    before = wecom_peer.now()
    await paced.send(conv("user:alice"), OutgoingMessage(title="nodes", body=body))
    contents = [s.payload["markdown"]["content"] for s in wecom_peer.sent[first_parts:]]
    assert len(contents) > 1 and len(contents) == len(set(contents))
    assert "node-000" in contents[0] and "node-059" in contents[-1]
    assert wecom_peer.now() - before >= sum(defaults.RATE_LIMIT_PAUSES_SECONDS[:2])


async def test_peer_rate_errcode_beyond_the_pauses_fails_with_a_retry_after(
    paced: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    await paced.send(conv("user:alice"), note(0))
    wecom_peer.throttle_next(1 + len(defaults.RATE_LIMIT_PAUSES_SECONDS), errcode=45011)
    with pytest.raises(DeliveryError, match="limited") as limited:
        await paced.send(conv("user:alice"), note(1))
    assert limited.value.retry_after == defaults.RATE_LIMIT_RETRY_SECONDS
    await paced.send(conv("user:alice"), note(1))
    assert len(wecom_peer.sent) == 2


async def test_peer_group_robot_past_20_a_minute_answers_45009_and_kobot_paces_below_it(
    paced: WeComAdapter, wecom_peer: WeComPeer, redis: Redis
) -> None:
    for index in range(25):
        await paced.send(conv("robot:default"), note(index))
    assert len(wecom_peer.sent) == 25
    assert len(wecom_peer.requests_to("webhook/send")) == 25  # none refused and retried
    # without pacing, the 21st post inside a minute is refused with WeCom's errcode
    for key in list(redis.scan_iter("kobot:wecom:pace:*")):
        redis.delete(key)
    with pytest.raises(DeliveryError, match="limited"):
        for index in range(21):
            await paced.outbound._post_json(
                wecom_peer.base_url + "webhook/send",
                {"msgtype": "markdown", "markdown": {"content": f"x{index}"}},
                params={"key": wecom_peer.robot_key},
                what="a robot post",
            )


async def test_peer_app_markdown_over_2048_bytes_is_refused_and_kobot_splits_below_it(
    adapter: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    client, agent_id = adapter.api.client, wecom_peer.agent_id
    from wechatpy.exceptions import WeChatClientException

    too_long = {"msgtype": "markdown", "markdown": {"content": "字" * 683}}  # 2,049 bytes
    with pytest.raises(WeChatClientException) as refused:
        client.message.send(agent_id, "alice", msg=too_long)
    assert refused.value.errcode == 40058
    big = OutgoingMessage(title="big", body="\n".join(["字" * 600] * 4))  # 7.2 KB
    await adapter.send(conv("user:alice"), big)
    parts = [s.payload["markdown"]["content"] for s in wecom_peer.sent]
    assert len(parts) >= 3 and all(len(p.encode()) <= 2048 for p in parts)
    await adapter.send(conv("robot:default"), big)
    robot = [s for s in wecom_peer.sent if s.api == "webhook/send"]
    assert len(robot) == 2  # the group robot's limit is 4,096 bytes


async def test_peer_recipient_outside_the_visible_range_is_not_delivered(
    adapter: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    wecom_peer.hidden.add("carol")
    with pytest.raises(DeliveryError, match="visible range"):
        await adapter.send(conv("user:carol"), samples.HELP)
    with pytest.raises(DeliveryError, match="visible range"):
        await adapter.send(conv("user:nobody"), samples.COMMAND_REPLY)
    assert wecom_peer.sent == []
    answer = adapter.api.client.message.send(
        wecom_peer.agent_id, "alice|carol", msg={"msgtype": "markdown", "markdown": {"content": "hi"}}
    )
    assert answer["errcode"] == 0 and answer["invaliduser"] == "carol"  # a partial failure
    assert wecom_peer.sent[-1].target == "alice"


async def test_peer_unknown_group_chat_and_bad_member_count_answer_real_errcodes(
    adapter: WeComAdapter, wecom_peer: WeComPeer
) -> None:
    with pytest.raises(DeliveryError, match="errcode 40050"):
        await adapter.send(conv("appchat:nosuchchat"), samples.HELP)
    client = adapter.api.client
    with pytest.raises(DeliveryError, match="errcode 86006"):
        await adapter.api.call(
            lambda: client.appchat.create(chat_id="solo", name="solo", owner="alice", user_list=["alice"]),
            what="a group chat",
        )
