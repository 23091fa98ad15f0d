"""People's names through WeCom's contacts API (user/get), cached, with the userid as the fallback."""

from __future__ import annotations

import httpx

from tests.chat.sinks import RecordingSink
from tests.peers.wecom import WeComPeer
from tests.support.waiting import eventually


async def say(http: httpx.AsyncClient, peer: WeComPeer, user: str, text: str = "list clusters") -> None:
    query, body = peer.callback_app(peer.text_xml(user_id=user, content=text))
    assert (await http.post(f"/wecom/callback?{query}", content=body)).status_code == 200


async def names(sink: RecordingSink, count: int) -> list[str]:
    await eventually(lambda: len(sink.messages) >= count, timeout=5, what=f"{count} messages")
    return [m.identity.display_name for m in sink.messages]


async def test_peer_names_come_from_the_contacts_api_once_per_person(
    http: httpx.AsyncClient, wecom_peer: WeComPeer, sink: RecordingSink
) -> None:
    await say(http, wecom_peer, "zhangsan")
    await say(http, wecom_peer, "zhangsan")
    await say(http, wecom_peer, "lisi")
    assert sorted(await names(sink, 3)) == ["张三", "张三", "李四"]
    asked = [r.query["userid"] for r in wecom_peer.requests_to("user/get")]
    assert sorted(asked) == ["lisi", "zhangsan"]  # the second message used the cache
    assert all(m.identity.user_id in ("zhangsan", "lisi") for m in sink.messages)


async def test_peer_person_outside_the_apps_range_or_unknown_is_shown_by_userid(
    http: httpx.AsyncClient, wecom_peer: WeComPeer, sink: RecordingSink
) -> None:
    wecom_peer.hidden.add("carol")
    await say(http, wecom_peer, "carol")  # user/get: 60011, no permission
    await say(http, wecom_peer, "mallory")  # user/get: 60111, no such userid
    await say(http, wecom_peer, "carol")
    assert sorted(await names(sink, 3)) == ["carol", "carol", "mallory"]
    asked = [r.query["userid"] for r in wecom_peer.requests_to("user/get")]
    assert sorted(asked) == ["carol", "mallory"]  # a miss is remembered too, for a while


async def test_peer_contacts_api_down_still_delivers_the_message_under_the_userid(
    http: httpx.AsyncClient, wecom_peer: WeComPeer, sink: RecordingSink
) -> None:
    wecom_peer.fail_next(1, status=503, path="/cgi-bin/user/get")
    await say(http, wecom_peer, "zhangsan")
    assert await names(sink, 1) == ["zhangsan"]
