"""The HTTP surface over a real Valkey: health, metrics, OpenAPI and the authorized REST API."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from bot.app import create_app
from bot.chat.types import Conversation, Identity
from bot.clusters import ClusterRecord, ClusterState, NodeRecord
from bot.settings import Settings
from tests.workers.jobkit import FIXTURE_PLAYBOOKS


@pytest.fixture
def token() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture
def policy_file(tmp_path: Path, token: str) -> Path:
    digest = hashlib.sha256(token.encode()).hexdigest()
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\n"
        "bindings:\n"
        "  - role: viewer\n"
        '    subjects: ["api:reader"]\n'
        '    clusters: ["prod-*"]\n'
        "api_users:\n"
        "  reader:\n"
        f'    token_sha256: "{digest}"\n'
    )
    return path


@pytest.fixture
async def client(redis_url: str, data_dir: Path, policy_file: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        playbooks_dir=FIXTURE_PLAYBOOKS,
        in_process_worker=False,
        policy_file=policy_file,
        plugins=["tests.fixtures.operations"],
    )
    app = create_app(settings)
    runtime = app.state.runtime
    for name in ("prod-eu", "staging"):
        runtime.clusters.save(
            ClusterRecord(
                name=name,
                state=ClusterState.RUNNING,
                version="1.31.4",
                nodes=[NodeRecord(name=f"{name}-master-1", role="master", address="10.0.0.1")],
            )
        )
    spec = runtime.jobs.new_spec(
        kind="test.steps",
        cluster="prod-eu",
        params={"marker": "/nonexistent"},
        requested_by=Identity(platform="terminal", user_id="alice"),
        reply_to=Conversation(platform="terminal", conversation_id="local"),
    )
    runtime.jobs.submit(spec)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kobot") as http:
        yield http
    runtime.close()


async def test_healthz_checks_the_store(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_metrics_expose_jobs_and_queue_depth(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    assert 'kobot_jobs{state="queued"} 1.0' in text
    assert "kobot_queue_depth 1.0" in text
    assert "kobot_event_to_chat_seconds" in text


async def test_openapi_lists_the_rest_api(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/api/v1/clusters", "/api/v1/clusters/{name}", "/api/v1/jobs/{job_id}", "/api/v1/audit"} <= set(
        paths
    )
    assert (await client.get("/docs")).status_code == 200


async def test_rest_api_refuses_requests_without_a_valid_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/clusters")).status_code == 401
    forged = await client.get("/api/v1/clusters", headers={"Authorization": "Bearer not-the-token"})
    assert forged.status_code == 401


async def test_rest_api_shows_only_what_the_caller_may_see(client: httpx.AsyncClient, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    listed = await client.get("/api/v1/clusters", headers=auth)
    assert [c["name"] for c in listed.json()] == ["prod-eu"]
    assert (await client.get("/api/v1/clusters/prod-eu", headers=auth)).json()["nodes"][0][
        "name"
    ] == "prod-eu-master-1"
    refused = await client.get("/api/v1/clusters/staging", headers=auth)
    assert refused.status_code == 403 and "cluster.show" in refused.json()["detail"]
    job = (await client.get("/api/v1/jobs/1", headers=auth)).json()
    assert job["state"] == "queued" and job["steps"][0]["name"] == "prepare"
    assert job["events"][0]["type"] == "job_queued"
    assert (await client.get("/api/v1/jobs/99", headers=auth)).status_code == 404
