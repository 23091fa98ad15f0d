"""Under load: acks that never wait on the store or on work, shed work past the queue, replays across
kobot processes, and Web API calls over kept-alive connections."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI

from bot.chat.slack import defaults
from bot.chat.slack.adapter import SlackAdapter
from bot.chat.slack.defaults import EVENTS_PATH
from kobot.conversations import ButtonClick, Conversation, InboundMessage
from kobot.messages import OutgoingMessage
from tests.chat.sinks import RecordingSink
from tests.peers.slack import SlackPeer, event_callback, mention_event, signed_headers
from tests.support.network import LOOPBACK
from tests.support.slack import settings_for
from tests.support.waiting import eventually

ACK_SECONDS = 0.5
"""An ack that is not waiting on anything takes milliseconds; this leaves room for a loaded machine."""


class HeldSink:
    """Holds every message until released: work that never finishes while the acks are measured."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.messages: list[InboundMessage] = []

    async def on_message(self, message: InboundMessage) -> None:
        await self.release.wait()
        self.messages.append(message)

    async def on_click(self, click: ButtonClick) -> None:
        return None


@pytest.fixture
def silent_store() -> Iterator[str]:
    """A Redis URL whose server accepts connections and never answers: a store stuck under load."""
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(64)
        yield f"redis://{LOOPBACK}:{listener.getsockname()[1]}/0?socket_timeout=30"


def _app(adapter: SlackAdapter) -> httpx.AsyncClient:
    app = FastAPI()
    router = adapter.router()
    assert router is not None
    app.include_router(router)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kobot.test")


def _signed(secret: str, text: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event_callback(mention_event(text=f"<@U0KOBOT> {text}"))).encode()
    return body, {"Content-Type": "application/json", **signed_headers(signing_secret=secret, body=body)}


@pytest.fixture
async def stuck_store_adapter(
    peer: SlackPeer, signing_secret: str, silent_store: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[SlackAdapter, RecordingSink]]:
    monkeypatch.setattr(defaults, "STOP_GRACE_SECONDS", 0.1)
    sink = RecordingSink()
    adapter = SlackAdapter(settings=settings_for(peer, signing_secret), redis_url=silent_store)
    await adapter.start(sink)
    yield adapter, sink
    await adapter.stop()


async def test_peer_ack_and_replay_refusal_never_wait_on_the_store(
    stuck_store_adapter: tuple[SlackAdapter, RecordingSink], signing_secret: str
) -> None:
    adapter, sink = stuck_store_adapter
    body, headers = _signed(signing_secret, "status")
    async with _app(adapter) as http:
        started = time.monotonic()
        first = await http.post(EVENTS_PATH, content=body, headers=headers)
        again = await http.post(EVENTS_PATH, content=body, headers=headers)
        took = time.monotonic() - started
    assert first.status_code == 200
    assert again.status_code == 401, "a replay to the same process is refused from memory"
    assert took < 2 * ACK_SECONDS
    assert adapter.inbound_in_flight == 1, "the work waits for the store's replay record, the ack did not"
    assert sink.messages == []


async def test_peer_acks_stay_fast_while_every_worker_is_busy_and_overflow_is_shed(
    peer: SlackPeer, signing_secret: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defaults, "INBOUND_WORKERS", 2)
    monkeypatch.setattr(defaults, "INBOUND_QUEUE_MAX", 3)
    sink = HeldSink()
    adapter = SlackAdapter(settings=settings_for(peer, signing_secret), redis_url=redis_url)
    await adapter.start(sink)
    try:
        async with _app(adapter) as http:
            acks = []
            for index in range(10):
                body, headers = _signed(signing_secret, f"status shed-{index}")
                started = time.monotonic()
                response = await http.post(EVENTS_PATH, content=body, headers=headers)
                acks.append(time.monotonic() - started)
                assert response.status_code == 200
                await asyncio.sleep(0.02)  # let the workers pick up what they can
        assert max(acks) < ACK_SECONDS, acks
        assert adapter.shed == 10 - 2 - 3, "two in the workers' hands, three queued, the rest shed"
        sink.release.set()
        await eventually(lambda: adapter.inbound_in_flight == 0)
        assert len(sink.messages) == 5
    finally:
        await adapter.stop()


async def test_peer_replay_to_another_kobot_is_acked_there_and_never_handed_on(
    peer: SlackPeer, signing_secret: str, redis_url: str
) -> None:
    sinks = [RecordingSink(), RecordingSink()]
    adapters = [SlackAdapter(settings=settings_for(peer, signing_secret), redis_url=redis_url) for _ in sinks]
    for adapter, sink in zip(adapters, sinks, strict=True):
        await adapter.start(sink)
    try:
        body, headers = _signed(signing_secret, "delete cluster prod")
        async with _app(adapters[0]) as one, _app(adapters[1]) as other:
            first = await one.post(EVENTS_PATH, content=body, headers=headers)
            await eventually(lambda: sinks[0].messages)
            replayed = await other.post(EVENTS_PATH, content=body, headers=headers)
        assert (first.status_code, replayed.status_code) == (200, 200)
        await eventually(lambda: adapters[1].inbound_in_flight == 0)
        assert len(sinks[0].messages) == 1
        assert sinks[1].messages == []
    finally:
        for adapter in adapters:
            await adapter.stop()


async def test_peer_web_api_calls_share_kept_alive_connections(
    peer: SlackPeer, signing_secret: str, redis_url: str
) -> None:
    adapter = SlackAdapter(settings=settings_for(peer, signing_secret), redis_url=redis_url)
    await adapter.start(RecordingSink())
    try:
        where = Conversation(platform="slack", conversation_id="C0OPS")
        for index in range(20):
            await adapter.send(where, OutgoingMessage(title=f"reply {index}"))
        await asyncio.gather(
            *(adapter.send(where, OutgoingMessage(title=f"together {i}")) for i in range(10))
        )
    finally:
        await adapter.stop()
    assert len(peer.requests_to("chat.postMessage")) == 30
    # auth.test and the sequential posts reuse one connection; the ten at once need at most ten more
    assert len(peer.api_client_ports) <= 11, len(peer.api_client_ports)
    assert adapter.client.session is None, "the session is closed and let go on stop"


class HoggingSink:
    """Takes the event loop for a while per message, as CPU-bound work does."""

    def __init__(self) -> None:
        self.messages = 0

    async def on_message(self, message: InboundMessage) -> None:
        time.sleep(HOG_SECONDS)  # blocking on purpose: the loop is busy, not waiting
        self.messages += 1

    async def on_click(self, click: ButtonClick) -> None:
        return None


HOG_SECONDS = 0.02
"""Loop time one message takes in the hogging sink: 48 of them at once would hold an ack for ~1 s."""


BURST = 250
"""Messages queued at once: five seconds of loop time in all, so the gate closes while work remains."""


async def test_peer_work_that_takes_the_loop_runs_on_fewer_workers_until_the_loop_keeps_time(
    peer: SlackPeer, signing_secret: str, redis_url: str
) -> None:
    """The gate that keeps acks prompt under CPU-bound work (the ack latency itself is `make bench`'s:
    over an in-process transport an ack never waits for the loop)."""
    sink = HoggingSink()
    adapter = SlackAdapter(settings=settings_for(peer, signing_secret), redis_url=redis_url)
    await adapter.start(sink)
    try:
        assert adapter.allowed_workers == defaults.INBOUND_WORKERS
        async with _app(adapter) as http:
            for index in range(BURST):
                body, headers = _signed(signing_secret, f"status burst-{index}")
                assert (await http.post(EVENTS_PATH, content=body, headers=headers)).status_code == 200
            await eventually(lambda: adapter.allowed_workers == defaults.INBOUND_WORKERS_MIN, timeout=10)
            assert adapter.inbound_in_flight > 0, "fewer workers while work remains, none lost"
        await eventually(lambda: sink.messages == BURST, timeout=60)
        await eventually(lambda: adapter.allowed_workers == defaults.INBOUND_WORKERS, timeout=10)
        assert adapter.shed == 0
    finally:
        await adapter.stop()


@pytest.fixture
def closed_store() -> str:
    """A Redis URL nobody listens on: the store is down."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    return f"redis://{LOOPBACK}:{port}/0"


async def test_peer_with_the_store_down_a_message_is_still_handed_on_to_be_answered(
    peer: SlackPeer, signing_secret: str, closed_store: str
) -> None:
    """Dropping it would leave the person with silence; handed on, the dispatcher (which needs the store
    too) answers that kobot cannot act now."""
    await _acked_and_handed_on(peer, signing_secret, store_url=closed_store, text="status down")


async def _acked_and_handed_on(peer: SlackPeer, signing_secret: str, *, store_url: str, text: str) -> None:
    """An event saying `text`, sent to an adapter on the store at `store_url`, is acked and reaches the
    dispatcher."""
    sink = RecordingSink()
    adapter = SlackAdapter(settings=settings_for(peer, signing_secret), redis_url=store_url)
    await adapter.start(sink)
    try:
        body, headers = _signed(signing_secret, text)
        async with _app(adapter) as http:
            response = await http.post(EVENTS_PATH, content=body, headers=headers)
        assert response.status_code == 200
        await eventually(lambda: len(sink.messages) == 1)
        assert sink.messages[0].text.endswith(text)
    finally:
        await adapter.stop()


async def test_peer_with_the_store_stuck_a_message_is_handed_on_once_its_store_calls_time_out(
    peer: SlackPeer, signing_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that takes connections and never answers (stopped, cut off by the network) held every
    worker for ever, and events after them were shed in silence; bounded, the store calls fail and the
    message is handed on to be answered as with the store down."""
    monkeypatch.setattr(defaults, "STORE_TIMEOUT_SECONDS", 0.3)
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(64)
        # no socket_timeout in the URL: the adapter's own bound is what is tested
        stuck = f"redis://{LOOPBACK}:{listener.getsockname()[1]}/0"
        await _acked_and_handed_on(peer, signing_secret, store_url=stuck, text="status stuck")
