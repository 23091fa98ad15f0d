"""`create cluster … dry_run=true`: its spellings, its risk (no approval, the right to create), and over
REST, on the real app with a real Valkey: queued at once, audited as a dry run, refused to a viewer."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.app import create_app
from bot.runtime import Runtime
from commands.parser import parse
from commands.registry import COMMANDS
from kobot.errors import CommandError
from kobot.risk import Risk
from kobot.settings import Settings
from kobot.settings_ip_pools import IpPoolConfig
from tests.support.asgi import serve
from workers.ippool import IpPools

CREATE = "create cluster lab masters=1 workers=2 provider=vsphere"
OPS_TOKEN = "ops-" + "o" * 40
READER_TOKEN = "reader-" + "r" * 40


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


POLICY = f"""
version: 1
bindings:
  - role: operator
    subjects: ["api:ops"]
  - role: viewer
    subjects: ["api:reader"]
api_users:
  ops:
    token_sha256: "{_digest(OPS_TOKEN)}"
  reader:
    token_sha256: "{_digest(READER_TOKEN)}"
"""
"""From a file, so a risky command needs the default approval; a dry run is not risky."""


@pytest.mark.parametrize(
    "text",
    [
        f"{CREATE} dry_run=true",
        f"{CREATE} dry-run=yes",
        f"{CREATE} --dry-run",
        f"{CREATE} dryrun",
        "创建集群 lab 主节点=1 工作节点=2 平台=vsphere 试运行",
        "创建集群 lab 主节点=1 工作节点=2 平台=vsphere 演练=true",
    ],
)
def test_dry_run_spellings_make_a_create_of_change_risk(text: str) -> None:
    parsed = parse(text)
    assert (parsed.command, parsed.args["dry_run"], parsed.risk) == ("cluster.create", True, Risk.CHANGE)


def test_without_dry_run_the_vsphere_create_stays_risky_and_a_bad_value_names_the_allowed_ones() -> None:
    parsed = parse(CREATE)
    assert (parsed.args["dry_run"], parsed.risk) == (False, Risk.RISKY)
    with pytest.raises(CommandError, match="dry_run is a flag: say --dry-run or dry_run=yes/no, got '是'"):
        parse(f"{CREATE} 试运行=是")


def test_dry_run_is_in_the_help_of_create() -> None:
    spec = COMMANDS["cluster.create"]
    assert "dry_run" in spec.args_model.model_fields
    assert any("dry_run=true" in example for example in spec.examples)


@pytest.fixture
def served(redis_url: str, data_dir: Path) -> Iterator[tuple[httpx.Client, Runtime]]:
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY)
    settings = Settings(
        redis_url=SecretStr(redis_url), data_dir=data_dir, in_process_worker=False, policy_file=policy
    )
    app = create_app(settings)
    runtime: Runtime = app.state.runtime
    # TEST-NET addresses: the job is only queued here, nothing dials them
    IpPools(runtime.redis).configure(
        pool=IpPoolConfig(zone="lab", cidr="192.0.2.0/24", first="192.0.2.10", last="192.0.2.20")
    )
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http, runtime


def _create(http: httpx.Client, token: str, **args: Any) -> httpx.Response:
    body = {
        "command": "cluster.create",
        "cluster": "lab",
        "args": {"masters": 1, "workers": 2, "provider": "vsphere", **args},
    }
    return http.post("/api/v1/commands", json=body, headers={"Authorization": f"Bearer {token}"})


def test_rest_dry_run_of_a_vsphere_create_is_queued_without_approval_and_audited(
    served: tuple[httpx.Client, Runtime],
) -> None:
    http, runtime = served
    response = _create(http, OPS_TOKEN, dry_run=True)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["outcome"] == "queued" and answer["approval"] is None
    record = runtime.jobs.records.require(answer["job_id"])
    assert record.spec.kind == "cluster.create" and record.spec.params["dry_run"] is True
    assert [step.name for step in record.steps] == ["plan", "provision"]
    [queued] = runtime.audit.query(action="job.queued")
    assert (queued.actor, queued.cluster) == ("api:ops", "lab")
    assert queued.detail["args"]["dry_run"] is True
    assert IpPools(runtime.redis).reserved(cluster="lab") == {}
    assert runtime.clusters.get("lab") is None


def test_rest_dry_run_needs_the_right_to_create(served: tuple[httpx.Client, Runtime]) -> None:
    http, runtime = served
    response = _create(http, READER_TOKEN, dry_run=True)
    assert response.status_code == 403, response.text
    assert "cluster.create" in response.text
    assert len(runtime.queue) == 0
