"""kobot as deployed (`create_app`) under mutated, correctly authenticated requests: never a 5xx.

Three HTTP surfaces besides Slack's: WeCom's app callback (each body encrypted and signed with the
app's token and key, as WeCom sends it, so the mutation reaches the XML inside), the Alertmanager
webhook (with its bearer token) and the REST API (with an API user's bearer token and mutated paths
and query strings). Replies go to a running WeCom peer; the store is the real Valkey.
"""

from __future__ import annotations

import hashlib
import logging
import random
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from alerts.defaults import WEBHOOK_PATH
from bot.app import create_app
from kobot.settings import Settings
from kobot.settings_alerts import AlertsSettings
from tests.fuzz.mutations import NASTY_STRINGS, mutate_bytes, mutated_json_bodies
from tests.peers.wecom import WeComPeer
from tests.support.alertmanager import webhook_body
from tests.support.asgi import in_process
from tests.support.wecom import settings_for

REQUESTS = 2_000
"""Mutated requests per surface."""

SEED = 20_261_129

WEBHOOK_TOKEN = "webhook-" + "w" * 32
API_TOKEN = "reader-" + "r" * 32

POLICY = f"""
version: 1
bindings:
  - role: operator
    subjects: ["wecom:alice"]
  - role: viewer
    subjects: ["api:reader"]
api_users:
  reader:
    token_sha256: "{hashlib.sha256(API_TOKEN.encode()).hexdigest()}"
"""


@pytest.fixture
def wecom_peer() -> Iterator[WeComPeer]:
    with WeComPeer().running() as peer:
        yield peer


@pytest.fixture
async def kobot(wecom_peer: WeComPeer, redis_url: str, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY)
    settings = Settings(
        policy_file=policy,
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        in_process_worker=False,
        wecom=settings_for(wecom_peer),
        alerts=AlertsSettings(webhook_bearer_token=SecretStr(WEBHOOK_TOKEN)),
        plugins=["tests.fixtures.operations"],
    )
    async with in_process(create_app(settings), raise_app_exceptions=False) as client:
        yield client


def _unexpected(records: list[logging.LogRecord]) -> list[str]:
    return [f"{r.name}: {r.getMessage()}"[:200] for r in records if r.levelno >= logging.ERROR or r.exc_info]


def _tally(statuses: dict[int, int], bad: list[str], response: httpx.Response, what: str) -> None:
    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    if response.status_code >= 500:
        bad.append(f"{response.status_code} {what[:120]!r}")


def mutated_xml(rng: random.Random, peer: WeComPeer) -> str:
    xml = rng.choice(
        [
            peer.text_xml(user_id="alice", content="list clusters"),
            peer.card_click_xml(user_id="alice", task_id="task01", key="approval.approve"),
        ]
    )
    choice = rng.randrange(3)
    if choice == 0:
        return mutate_bytes(rng, xml.encode()).decode("utf-8", "replace")
    if choice == 1:
        tag = rng.choice(["FromUserName", "Content", "MsgType", "CreateTime", "MsgId", "Event", "TaskId"])
        start = xml.find(f"<{tag}>")
        end = xml.find(f"</{tag}>")
        if start >= 0 and end > start:
            nasty = rng.choice(NASTY_STRINGS).encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            return xml[: start + len(tag) + 2] + nasty + xml[end:]
        return xml
    return xml.replace("<xml>", "<xml><xml>", rng.randrange(2)).replace("]]>", "", rng.randrange(2))


async def test_peer_fuzzed_wecom_callbacks_never_5xx(
    kobot: httpx.AsyncClient, wecom_peer: WeComPeer, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(SEED)
    statuses: dict[int, int] = {}
    bad: list[str] = []
    for _ in range(REQUESTS):
        query, body = wecom_peer.callback_app(mutated_xml(rng, wecom_peer))
        raw = body.encode()
        if rng.random() < 0.2:
            raw = mutate_bytes(rng, raw)  # the envelope itself broken: refused before decryption
        response = await kobot.post(f"/wecom/callback?{query}", content=raw)
        _tally(statuses, bad, response, raw.decode("utf-8", "replace"))
    assert not bad, bad[:5]
    assert statuses.get(200, 0) > REQUESTS // 10, statuses
    assert not _unexpected(caplog.records), _unexpected(caplog.records)[:5]


async def test_peer_fuzzed_alertmanager_webhooks_never_5xx(
    kobot: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(SEED + 1)
    documents = [webhook_body(), webhook_body(status="resolved", fingerprints=("a1", "b2"), group="h")]
    statuses: dict[int, int] = {}
    bad: list[str] = []
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
    for body in mutated_json_bodies(rng, documents, REQUESTS):
        response = await kobot.post(WEBHOOK_PATH, content=body, headers=headers)
        _tally(statuses, bad, response, body.decode("utf-8", "replace"))
    assert not bad, bad[:5]
    assert statuses.get(200, 0) > REQUESTS // 20 and statuses.get(422, 0) > REQUESTS // 10, statuses
    assert not _unexpected(caplog.records), _unexpected(caplog.records)[:5]


def rest_requests(rng: random.Random, count: int) -> list[str]:
    """Paths and query strings of the read-only REST API, with values mutated."""
    targets = []
    for _ in range(count):
        value = rng.choice(
            [*NASTY_STRINGS[:-1], "prod-eu", "1", "#1", "-1", "9" * 40, "%00", "..%2f..", "a/b"]
        )
        quoted = urllib.parse.quote(value.encode("utf-8", "surrogatepass"), safe=rng.choice(["", "/%"]))
        kind = rng.randrange(4)
        if kind == 0:
            targets.append(f"/api/v1/clusters/{quoted}")
        elif kind == 1:
            targets.append(f"/api/v1/jobs/{quoted}")
        elif kind == 2:
            key = rng.choice(["cluster", "since", "actor", "action", "limit", "format"])
            targets.append(f"/api/v1/audit?{key}={quoted}&limit={rng.choice(['1', '0', '1001', quoted])}")
        else:
            targets.append(f"/api/v1/clusters?{quoted}={quoted}")
    return targets


async def test_peer_fuzzed_rest_requests_never_5xx(
    kobot: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(SEED + 2)
    statuses: dict[int, int] = {}
    bad: list[str] = []
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    for target in rest_requests(rng, REQUESTS):
        response = await kobot.get(target, headers=headers)
        _tally(statuses, bad, response, target)
    assert not bad, bad[:5]
    assert statuses.get(200, 0) > 0 and statuses.get(404, 0) > 0, statuses
    assert not _unexpected(caplog.records), _unexpected(caplog.records)[:5]
