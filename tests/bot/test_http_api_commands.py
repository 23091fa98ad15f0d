"""`POST /api/v1/commands` on the real app (create_app, lifespan and all) under uvicorn on loopback, over
HTTP, with a real Valkey: the same dispatcher, policy, approvals and audit as a chat line."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.api_command_models import REQUEST_EXAMPLES, CommandRequest
from bot.api_commands import typed_command
from bot.api_replies import REST_CONVERSATION
from bot.app import create_app
from bot.dispatcher import Dispatcher
from bot.runtime import Runtime
from bot.supervisor import Supervisor
from commands.parser import parse
from kobot.clusters import ClusterRecord, ClusterState, NodeRecord
from kobot.settings import Settings
from tests.fixtures.operations import PLAN_DELAY_KEY
from tests.support.asgi import serve
from tests.workers.jobkit import FIXTURE_PLAYBOOKS

CI_TOKEN = "ci-" + "c" * 40
READER_TOKEN = "reader-" + "r" * 40
STRANGER_TOKEN = "stranger-" + "s" * 40
"""An API user no binding names: the `*` binding for chat users must not reach it over REST either."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


POLICY = f"""
version: 1
bindings:
  - role: operator
    subjects: ["api:ci"]
    clusters: ["demo", "prod-*"]
  - role: viewer
    subjects: ["api:reader"]
    clusters: ["*"]
  - role: operator
    subjects: ["*"]
approvals:
  - commands: ["test.risky"]
    approvals: 1
    approver_role: admin
api_users:
  ci:
    token_sha256: "{digest(CI_TOKEN)}"
  reader:
    token_sha256: "{digest(READER_TOKEN)}"
  stranger:
    token_sha256: "{digest(STRANGER_TOKEN)}"
"""

CI = {"Authorization": f"Bearer {CI_TOKEN}"}
READER = {"Authorization": f"Bearer {READER_TOKEN}"}
STRANGER = {"Authorization": f"Bearer {STRANGER_TOKEN}"}


def kobot_settings(redis_url: str, data_dir: Path, **overrides: Any) -> Settings:
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY)
    return Settings(
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        playbooks_dir=FIXTURE_PLAYBOOKS,
        in_process_worker=False,
        policy_file=policy,
        plugins=["tests.fixtures.operations"],
        **overrides,
    )


@pytest.fixture
def served(redis_url: str, data_dir: Path) -> Iterator[tuple[httpx.Client, Runtime]]:
    app = create_app(kobot_settings(redis_url, data_dir, http_docs=True))
    runtime: Runtime = app.state.runtime
    runtime.clusters.save(
        ClusterRecord(
            name="prod-eu",
            state=ClusterState.RUNNING,
            version="1.31.4",
            nodes=[NodeRecord(name="prod-eu-master-1", role="master", address="10.0.0.1")],
        )
    )
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http, runtime


@pytest.fixture
def http(served: tuple[httpx.Client, Runtime]) -> httpx.Client:
    return served[0]


@pytest.fixture
def runtime(served: tuple[httpx.Client, Runtime]) -> Runtime:
    return served[1]


def command(http: httpx.Client, body: dict[str, Any], headers: dict[str, str] = CI) -> httpx.Response:
    return http.post("/api/v1/commands", json=body, headers=headers)


def test_a_dispatcher_that_cannot_be_built_answers_500_with_a_reference_to_the_log(
    redis_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dispatcher is built after the start: a build that fails (a broken install) is answered like any
    unexpected error, never with its text."""

    def broken(self: Dispatcher, *, runtime: Runtime) -> None:
        raise RuntimeError("a broken install")

    monkeypatch.setattr(Dispatcher, "__init__", broken)
    app = create_app(kobot_settings(redis_url, data_dir))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        response = command(http, {"text": "list clusters"})
    assert response.status_code == 500, response.text
    problem = response.json()
    assert problem["outcome"] == "failed" and problem["ref"]
    assert "broken install" not in response.text


def test_a_typed_line_is_queued_and_followed_at_the_jobs_route(http: httpx.Client, runtime: Runtime) -> None:
    response = command(http, {"text": "test steps demo marker=/nonexistent"})
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["outcome"] == "queued" and answer["approval"] is None
    job_id = answer["job_id"]
    assert answer["job_url"] == f"/api/v1/jobs/{job_id}"

    job = http.get(answer["job_url"], headers=CI)
    assert job.status_code == 200, job.text
    record = job.json()
    assert record["state"] == "queued" and record["spec"]["kind"] == "test.steps"
    assert record["spec"]["requested_by"]["platform"] == "api"
    assert record["spec"]["requested_by"]["user_id"] == "ci"
    assert record["spec"]["command_text"] == "test steps demo marker=/nonexistent"
    assert record["events"][0]["type"] == "job_queued"
    [queued] = [e for e in runtime.audit.query(limit=50) if e.action == "job.queued"]
    assert queued.actor == "api:ci" and queued.cluster == "demo"
    assert queued.detail["job"] == job_id


def test_a_typed_body_runs_the_same_command(http: httpx.Client, runtime: Runtime) -> None:
    response = command(http, {"command": "test.steps", "cluster": "demo", "args": {"marker": "/x y"}})
    assert response.status_code == 202, response.text
    record = runtime.jobs.records.require(response.json()["job_id"])
    assert record.spec.params == {"marker": "/x y"} and record.spec.cluster == "demo"
    assert record.spec.command_text == 'test steps marker="/x y" on demo'


def test_a_command_answered_at_once_carries_its_reply(http: httpx.Client) -> None:
    response = command(http, {"text": "list clusters"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["outcome"] == "answered" and answer["job_id"] is None
    assert any("prod-eu" in reply["text"] for reply in answer["replies"]), answer


def test_a_mistyped_line_gets_did_you_mean(http: httpx.Client, runtime: Runtime) -> None:
    response = command(http, {"text": "tset steps demo marker=/x"})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["outcome"] == "not_understood"
    assert "tset" in problem["detail"]
    assert "test steps demo marker=/x" in problem["suggestions"]
    assert len(runtime.queue) == 0


def test_a_mistyped_typed_body_names_what_exists(http: httpx.Client) -> None:
    unknown = command(http, {"command": "test.step", "cluster": "demo", "args": {"marker": "/x"}})
    assert unknown.status_code == 422 and "test.steps" in unknown.json()["suggestions"], unknown.text
    bad_args = command(http, {"command": "test.steps", "cluster": "demo", "args": {"marke": "/x"}})
    assert bad_args.status_code == 422, bad_args.text
    assert "marker" in bad_args.json()["detail"] and "marke" in bad_args.json()["detail"]
    no_cluster = command(http, {"command": "test.steps", "args": {"marker": "/x"}})
    assert no_cluster.status_code == 422 and "cluster" in no_cluster.json()["detail"]
    bad_cluster = command(http, {"command": "test.steps", "cluster": "Prod EU", "args": {"marker": "/x"}})
    assert bad_cluster.status_code == 422, bad_cluster.text


def test_a_body_that_is_neither_form_says_which_are_allowed(http: httpx.Client) -> None:
    for body in ({}, {"text": "list clusters", "command": "cluster.list"}, {"text": "x", "args": {"a": 1}}):
        response = command(http, body)
        assert response.status_code == 422, (body, response.text)
        assert "`text`" in response.text and "`command`" in response.text


def test_a_refused_command_is_403_with_the_reason_and_audited(http: httpx.Client, runtime: Runtime) -> None:
    response = command(http, {"text": "test steps demo marker=/x"}, headers=READER)
    assert response.status_code == 403, response.text
    problem = response.json()
    assert problem["outcome"] == "refused" and "test.steps" in problem["detail"]
    assert len(runtime.queue) == 0
    [refused] = [e for e in runtime.audit.query(limit=50) if e.action == "command.refused"]
    assert refused.actor == "api:reader" and refused.where == "api:rest"


def test_a_token_without_bindings_gets_nothing_from_the_everyone_binding(http: httpx.Client) -> None:
    response = command(http, {"text": "test steps demo marker=/x"}, headers=STRANGER)
    assert response.status_code == 403, response.text


def test_a_cluster_outside_the_tokens_bindings_is_refused(http: httpx.Client) -> None:
    response = command(http, {"text": "test steps staging marker=/x"})
    assert response.status_code == 403 and "staging" in response.json()["detail"], response.text


def test_no_token_no_command(http: httpx.Client) -> None:
    assert command(http, {"text": "list clusters"}, headers={}).status_code == 401
    forged = command(http, {"text": "list clusters"}, headers={"Authorization": "Bearer " + CI_TOKEN + "x"})
    assert forged.status_code == 401


def test_expected_errors_are_never_500(http: httpx.Client) -> None:
    missing = command(http, {"text": "job status 999"})
    assert missing.status_code == 404, missing.text
    assert missing.json()["outcome"] == "cannot_do" and "999" in missing.json()["detail"]
    too_long = command(http, {"text": "list clusters " + "x" * 3000})
    assert too_long.status_code == 422, too_long.text


def test_commands_about_this_conversation_are_refused(http: httpx.Client, runtime: Runtime) -> None:
    for text in ("use prod-eu here", "unbind", "notify prod-eu all"):
        response = command(http, {"text": text})
        assert response.status_code == 422, (text, response.text)
        assert "chat channel" in response.json()["detail"]
    assert runtime.policy.default_cluster(conversation=REST_CONVERSATION) is None


def test_a_risky_command_waits_for_approval_and_nothing_runs(http: httpx.Client, runtime: Runtime) -> None:
    response = command(http, {"text": "test risky demo marker=/x"})
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["outcome"] == "awaiting_approval" and answer["job_id"] is None
    approval = answer["approval"]
    assert approval["command"] == "test.risky" and approval["cluster"] == "demo"
    assert approval["plan"] == ["run fixture steps on demo (plan v1)"]
    assert approval["approver_role"] == "admin" and approval["approvals_required"] == 1
    assert approval["approval_channels"] == []
    assert len(runtime.queue) == 0
    # the card's signed button values stay with the approvers
    assert all(reply["title"] for reply in answer["replies"])
    assert "approval.approve" not in response.text and "value" not in response.text


def test_rest_replies_have_an_adapter_but_rest_jobs_no_progress_notifier(
    redis_url: str, data_dir: Path
) -> None:
    """Replies to REST callers go into the HTTP answer; no notifier reads the event stream for them."""
    app = create_app(kobot_settings(redis_url, data_dir))
    supervisor: Supervisor = app.state.supervisor
    try:
        assert "api" in app.state.runtime.adapters
        assert "api" not in {notifier.platform for notifier in supervisor.notifiers}
    finally:
        app.state.runtime.close()


def test_openapi_documents_the_commands_route_with_examples(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    route = schema["paths"]["/api/v1/commands"]["post"]
    examples = route["requestBody"]["content"]["application/json"]["examples"]
    assert {"text", "typed"} <= set(examples)
    assert {"200", "202", "403", "422"} <= set(route["responses"])
    problem = schema["components"]["schemas"]["CommandProblem"]
    assert problem["examples"][0]["suggestions"]


async def test_concurrent_callers_each_get_only_their_own_replies(http: httpx.Client) -> None:
    bodies = [{"text": "list clusters"} if i % 2 else {"text": f"job status {900 + i}"} for i in range(12)]
    async with httpx.AsyncClient(base_url=str(http.base_url), timeout=30) as client:
        answers = await asyncio.gather(*(client.post("/api/v1/commands", json=b, headers=CI) for b in bodies))
    for body, answer in zip(bodies, answers, strict=True):
        [reply] = answer.json()["replies"]
        if body["text"] == "list clusters":
            assert answer.status_code == 200 and "prod-eu" in reply["text"], answer.text
        else:
            job = body["text"].rsplit(" ", 1)[1]
            assert answer.status_code == 404 and job in reply["text"], (body, answer.text)


def test_the_documented_examples_are_one_command() -> None:
    """The schema's examples say the same thing three ways: each must be what the others are."""
    parsed = {
        name: typed_command(body, allow_local_hosts=False)
        if body.command is not None
        else parse(body.text or "", allow_local_hosts=False)
        for name, example in REQUEST_EXAMPLES.items()
        for body in [CommandRequest.model_validate(example["value"])]
    }
    assert len(set(map(repr, parsed.values()))) == 1, parsed


def test_an_unexpected_failure_answers_with_a_reference_not_its_text(
    http: httpx.Client, runtime: Runtime
) -> None:
    """A bug is a 500, but its answer names only a reference the operators find in the log."""
    runtime.redis.set(PLAN_DELAY_KEY, "not-a-number")  # the fixture handler's float() of it raises
    response = command(http, {"text": "test risky demo marker=/x"})
    assert response.status_code == 500, response.text
    problem = response.json()
    assert problem["outcome"] == "failed" and len(problem["ref"]) == 12
    assert "float" not in response.text and "not-a-number" not in response.text
    assert problem["ref"] in problem["replies"][0]["text"]
