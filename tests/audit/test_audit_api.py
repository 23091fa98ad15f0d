"""GET /api/v1/audit over a real HTTP server on loopback: bearer tokens, authorization, filters, JSONL."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from redis import Redis

from bot.api_audit import audit_router
from bot.policy import PolicyStore
from kobot.audit import AuditLog
from kobot.conversations import Conversation, Identity

SERVER_START_TIMEOUT = 10.0
ALICE = Identity(platform="slack", user_id="UALICE", display_name="alice")
OPS = Conversation(platform="slack", conversation_id="COPS")


class Tokens:
    admin = secrets.token_urlsafe(32)
    prod_auditor = secrets.token_urlsafe(32)
    viewer = secrets.token_urlsafe(32)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


POLICY = f"""
roles:
  auditor: {{commands: [audit]}}
api_users:
  ops-admin: {{token_sha256: {_digest(Tokens.admin)}}}
  prod-auditor: {{token_sha256: {_digest(Tokens.prod_auditor)}}}
  dashboard: {{token_sha256: {_digest(Tokens.viewer)}}}
bindings:
  - {{role: admin, subjects: ["api:ops-admin"]}}
  - {{role: auditor, subjects: ["api:prod-auditor"], clusters: ["prod-*"]}}
  - {{role: viewer, subjects: ["*"]}}
"""


@pytest.fixture
def base_url(tmp_path: Path, redis: Redis, redis_url: str) -> Iterator[str]:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    policy = PolicyStore(path=path, redis=redis)
    log = AuditLog(redis=redis, store_url=redis_url)
    for cluster, action in (("prod-eu", "command"), ("staging", "command"), ("prod-eu", "approval.approved")):
        log.record(who=ALICE, where=OPS, action=action, cluster=cluster, detail={"text": action}, result="ok")
    app = FastAPI()
    app.include_router(audit_router(audit=log, policy=policy))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _get(base_url: str, token: str | None, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(f"{base_url}/api/v1/audit", params=params, headers=headers, timeout=5)


def test_admin_reads_everything_newest_first(base_url: str) -> None:
    response = _get(base_url, Tokens.admin)
    assert response.status_code == 200
    body = response.json()
    assert [(e["cluster"], e["action"]) for e in body] == [
        ("prod-eu", "approval.approved"),
        ("staging", "command"),
        ("prod-eu", "command"),
    ]
    assert body[0]["actor"] == "slack:UALICE"


def test_filters_and_jsonl_export(base_url: str) -> None:
    filtered = _get(base_url, Tokens.admin, cluster="prod-eu", action="command", since="1h")
    assert [e["action"] for e in filtered.json()] == ["command"]
    export = _get(base_url, Tokens.admin, format="jsonl")
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("application/x-ndjson")
    lines = export.text.splitlines()
    assert [json.loads(line)["cluster"] for line in lines] == ["prod-eu", "staging", "prod-eu"]


@pytest.mark.parametrize(
    ("token", "header", "status"),
    [
        (None, None, 401),
        ("wrong-token", None, 401),
        (Tokens.admin, "Bearer", 401),
        (Tokens.admin, f"Basic {Tokens.admin}", 401),
        (Tokens.admin, f"Bearer {Tokens.admin}x", 401),
        (Tokens.viewer, None, 403),
    ],
    ids=["no header", "unknown token", "empty token", "wrong scheme", "token plus a byte", "viewer"],
)
def test_refused_callers(base_url: str, token: str | None, header: str | None, status: int) -> None:
    headers = {"Authorization": header} if header else {}
    if header is None and token is not None:
        headers = {"Authorization": f"Bearer {token}"}
    response = httpx.get(f"{base_url}/api/v1/audit", headers=headers, timeout=5)
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    else:
        assert "audit permission" in response.json()["detail"]


def test_cluster_scoped_auditor(base_url: str) -> None:
    assert _get(base_url, Tokens.prod_auditor, cluster="prod-eu").status_code == 200
    assert _get(base_url, Tokens.prod_auditor, cluster="staging").status_code == 403
    unfiltered = _get(base_url, Tokens.prod_auditor)
    assert unfiltered.status_code == 403, "without a cluster filter the trail covers every cluster"


def test_bad_parameters(base_url: str) -> None:
    assert _get(base_url, Tokens.admin, since="yesterday").status_code == 422
    assert _get(base_url, Tokens.admin, format="xml").status_code == 422
    assert _get(base_url, Tokens.admin, limit="0").status_code == 422
