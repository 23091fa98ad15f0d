"""Slack's inbound surface under mutated, correctly signed bodies: never a 5xx, never an unexpected exception.

Every body is signed with the app's secret, so it passes the signature check and reaches the parsing
behind it: Bolt's request parsing, kobot's payload translation, the user lookup against the peer and
the dispatcher's command parser. Events arrive as JSON; clicks and slash commands as forms.
"""

from __future__ import annotations

import json
import logging
import random
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bot.chat.slack.adapter import SlackAdapter
from bot.chat.slack.defaults import EVENTS_PATH
from commands.parser import parse
from kobot.conversations import ButtonClick, InboundMessage
from kobot.errors import CommandError
from tests.fuzz.mutations import NASTY_STRINGS, mutate_bytes, mutate_document, mutated_json_bodies, to_json
from tests.peers.slack import (
    SlackPeer,
    block_actions,
    event_callback,
    im_event,
    mention_event,
    signed_headers,
    slash_command,
)
from tests.support.slack import settings_for
from tests.support.waiting import eventually

BODIES = 2_000
"""Mutated bodies per surface (events; interactions and slash commands)."""

SEED = 20_261_129


class ParsingSink:
    """Stands where the dispatcher stands and parses every text as it would; keeps what went wrong."""

    def __init__(self) -> None:
        self.messages = 0
        self.clicks = 0
        self.failures: list[str] = []

    async def on_message(self, message: InboundMessage) -> None:
        self.messages += 1
        try:
            message.text.encode()
            message.identity.key.encode()
            parse(message.text)
        except CommandError:
            pass
        except Exception as exc:  # the point of the test: anything else is a finding
            self.failures.append(f"{type(exc).__name__}: {exc!r}"[:200])

    async def on_click(self, click: ButtonClick) -> None:
        self.clicks += 1
        try:
            (click.value + click.action_id + click.identity.key).encode()
        except Exception as exc:
            self.failures.append(f"{type(exc).__name__}: {exc!r}"[:200])


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    with SlackPeer(bot_token="xoxb-fuzz") as running:
        yield running


@pytest.fixture
async def kobot(
    peer: SlackPeer, redis_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, SlackAdapter, ParsingSink]]:
    sink = ParsingSink()
    adapter = SlackAdapter(settings=settings_for(peer, "fuzz-secret"), redis_url=redis_url)
    await adapter.start(sink)
    app = FastAPI()
    router = adapter.router()
    assert router is not None
    app.include_router(router)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kobot.test") as client:
        yield client, adapter, sink
    await adapter.stop()


def _form(fields: dict[str, str]) -> bytes:
    return urllib.parse.urlencode(fields).encode()


def event_documents() -> list[dict[str, Any]]:
    return [
        event_callback(mention_event(text="<@U0KOBOT> list clusters")),
        event_callback(im_event(text="help")),
        {"type": "url_verification", "challenge": "c", "token": "t"},
    ]


def interaction_bodies(rng: random.Random, count: int) -> Iterator[bytes]:
    """Forms: block_actions payloads of the wrong shape, slash commands with odd fields, broken forms."""
    click = block_actions(action_id="approval.approve#0", value="ap1.approve.sig", message_ts="1.000001")
    command = slash_command(text="help")
    for _ in range(count):
        kind = rng.randrange(3)
        if kind == 0:
            document: Any = click
            for _ in range(rng.randrange(1, 4)):
                document = mutate_document(rng, document)
            body = _form({"payload": json.dumps(document)})
        elif kind == 1:
            fields = dict(command)
            key = rng.choice(list(fields))
            fields[key] = rng.choice(NASTY_STRINGS)
            body = urllib.parse.urlencode(fields, errors="surrogatepass").encode()
        else:
            body = _form({"payload": to_json(click).decode()})
        if rng.random() < 0.3:
            body = mutate_bytes(rng, body)
        yield body


async def _post_all(client: httpx.AsyncClient, bodies: Iterator[bytes], content_type: str) -> dict[int, int]:
    statuses: dict[int, int] = {}
    bad: list[tuple[int, bytes]] = []
    for body in bodies:
        headers = {"Content-Type": content_type, **signed_headers(signing_secret="fuzz-secret", body=body)}
        response = await client.post(EVENTS_PATH, content=body, headers=headers)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            bad.append((response.status_code, body[:120]))
    assert not bad, f"{len(bad)} answers were 5xx, e.g. {bad[:5]}"
    return statuses


def _unexpected(records: list[logging.LogRecord]) -> list[str]:
    return [f"{r.name}: {r.getMessage()}"[:200] for r in records if r.levelno >= logging.ERROR or r.exc_info]


async def test_peer_fuzzed_events_never_5xx(
    kobot: tuple[httpx.AsyncClient, SlackAdapter, ParsingSink], caplog: pytest.LogCaptureFixture
) -> None:
    client, adapter, sink = kobot
    rng = random.Random(SEED)
    statuses = await _post_all(
        client, mutated_json_bodies(rng, event_documents(), BODIES), "application/json"
    )
    await eventually(lambda: adapter.inbound_in_flight == 0, timeout=30)
    assert sum(statuses.values()) == BODIES
    assert statuses.get(200, 0) > BODIES // 10, statuses  # valid-enough bodies still get through
    assert sink.messages > 0
    assert not sink.failures, sink.failures[:5]
    assert not _unexpected(caplog.records), _unexpected(caplog.records)[:5]


async def test_peer_fuzzed_interactions_and_commands_never_5xx(
    kobot: tuple[httpx.AsyncClient, SlackAdapter, ParsingSink], caplog: pytest.LogCaptureFixture
) -> None:
    client, adapter, sink = kobot
    rng = random.Random(SEED + 1)
    statuses = await _post_all(client, interaction_bodies(rng, BODIES), "application/x-www-form-urlencoded")
    await eventually(lambda: adapter.inbound_in_flight == 0, timeout=30)
    assert sum(statuses.values()) == BODIES
    assert statuses.get(200, 0) > BODIES // 10, statuses
    assert sink.messages > 0 and sink.clicks > 0
    assert not sink.failures, sink.failures[:5]
    assert not _unexpected(caplog.records), _unexpected(caplog.records)[:5]
