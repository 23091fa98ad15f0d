"""`setup repository on <host>` through the real dispatcher, policy and store (real Valkey): risky, so it
asks for approval and queues nothing yet; an operator may not ask at all (admins only by default, like
importing a cluster); its plan names the host and the bundle; a bad host is answered with what a host
may be."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from bot.dispatcher import Dispatcher
from bot.runtime import Runtime
from commands.definitions.repository import REPOSITORY_SETUP
from kobot.conversations import Conversation, Identity, InboundMessage
from kobot.job_records import JobState
from kobot.messages import OutgoingMessage
from tests.bot.recording_adapter import RecordingAdapter
from tests.support.dispatching import dispatching_runtime
from tests.workers.jobkit import job_service, job_settings, run_queue, spec
from workers.bundle.load import repository_of
from workers.bundle.repository_job import REPOSITORY_SCOPE, RepositoryStore, bundle_sha256

ROOM = Conversation(platform="slack", conversation_id="C0OPS")
ADMIN = Identity(platform="slack", user_id="U1", display_name="Ada")
OPERATOR = Identity(platform="slack", user_id="U7", display_name="Olu")

POLICY = """
version: 1
bindings:
  - role: admin
    subjects: ["slack:U1"]
  - role: operator
    subjects: ["slack:U7"]
    clusters: ["prod"]
"""


@pytest.fixture
def runtime(redis_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    """A bundle.json in place: the handler binds the request to it (its content is the worker's concern)."""
    (data_dir / "bundle").mkdir(parents=True, exist_ok=True)
    (data_dir / "bundle" / "bundle.json").write_text('{"built": 1}')
    rt = dispatching_runtime(redis_url=redis_url, data_dir=data_dir, policy=POLICY, policy_dir=tmp_path)
    yield rt
    rt.close()


async def say(runtime: Runtime, text: str, *, who: Identity = ADMIN) -> list[OutgoingMessage]:
    adapter = runtime.adapters["slack"]
    assert isinstance(adapter, RecordingAdapter)
    before = len(adapter.deliveries)
    await Dispatcher(runtime=runtime).on_message(InboundMessage(identity=who, conversation=ROOM, text=text))
    return [delivery.message for delivery in adapter.deliveries[before:]]


async def test_setup_repository_asks_for_approval_with_its_plan_and_queues_nothing_yet(
    runtime: Runtime,
) -> None:
    answers = await say(runtime, "setup repository on repo1.example.com")

    text = "\n".join(message.to_text() for message in answers)
    assert "approv" in text.lower(), text
    assert "docker-registry) on repo1.example.com" in text
    assert str(runtime.settings.data_dir / "bundle") in text
    assert runtime.jobs.records.recent(limit=5) == [] and len(runtime.queue) == 0


async def test_chinese_alias_reaches_the_same_command(runtime: Runtime) -> None:
    answers = await say(runtime, "搭建离线仓库 repo1.example.com")
    assert "docker-registry) on repo1.example.com" in "\n".join(m.to_text() for m in answers)


async def test_an_operator_may_not_set_up_the_repository_every_new_cluster_pulls_from(
    runtime: Runtime,
) -> None:
    answers = await say(runtime, "setup repository on repo1.example.com", who=OPERATOR)
    text = "\n".join(message.to_text() for message in answers)
    assert "it needs the repository.setup permission" in text, text
    assert "Approve" not in text
    assert runtime.jobs.records.recent(limit=5) == [] and len(runtime.queue) == 0


@pytest.mark.parametrize(
    "line", ["plan cluster offline-repository masters=1 workers=0 hosts=node1.example.com"]
)
async def test_the_repository_scope_is_no_cluster_name(runtime: Runtime, line: str) -> None:
    text = "\n".join(m.to_text() for m in await say(runtime, line))
    assert "is kept for kobot's own jobs (reserved: offline-repository)" in text, text


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        ("setup repository on not_a_host!", "Allowed arguments: host, break_glass"),
        ("setup repository on 127.0.0.1", "is a loopback address (this machine)"),
        ("setup repository on", "host is required (IP or hostname)"),
    ],
)
async def test_a_bad_or_missing_host_is_answered_and_queues_nothing(
    runtime: Runtime, line: str, answer: str
) -> None:
    answers = await say(runtime, line)
    text = "\n".join(message.to_text() for message in answers)
    assert answer in text, text
    assert "Approve" not in text
    assert runtime.jobs.records.recent(limit=5) == [] and len(runtime.queue) == 0


async def test_a_new_clusters_plan_takes_the_recorded_repository(runtime: Runtime) -> None:
    before = await say(runtime, "plan cluster lab masters=1 workers=0 hosts=node1.example.com")
    assert "offline repo" not in "\n".join(m.to_text() for m in before)

    RepositoryStore(runtime.redis).put(
        repository_of(host="repo1.example.com", files_port=8080, registry_port=5000)
    )
    after = await say(runtime, "plan cluster lab masters=1 workers=0 hosts=node1.example.com")

    assert "offline repo http://repo1.example.com:8080/packages" in "\n".join(m.to_text() for m in after)


async def test_without_a_built_bundle_the_request_is_answered_and_queues_nothing(runtime: Runtime) -> None:
    (runtime.settings.data_dir / "bundle" / "bundle.json").unlink()
    text = "\n".join(m.to_text() for m in await say(runtime, "setup repository on repo1.example.com"))
    assert "holds no bundle.json: build the bundle first" in text, text
    assert "Approve" not in text and len(runtime.queue) == 0


async def test_the_plan_names_the_bundle_it_is_approved_for(runtime: Runtime) -> None:
    bundle = runtime.settings.data_dir / "bundle"
    first = "\n".join(m.to_text() for m in await say(runtime, "setup repository on repo1.example.com"))
    assert f"bundle.json sha256 {bundle_sha256(bundle)[:12]}" in first, first


def test_a_job_approved_for_another_bundle_refuses_to_load_this_one(redis_url: str, data_dir: Path) -> None:
    """The approval's params carry the bundle.json sha256 the approver saw; a bundle rebuilt meanwhile
    (other images, other files) is not what they approved."""
    bundle = data_dir / "bundle"
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "bundle.json").write_text('{"built": 1}')
    approved = bundle_sha256(bundle)
    (bundle / "bundle.json").write_text('{"built": 2}')
    settings = job_settings(redis_url, data_dir)
    service = job_service(settings, Redis.from_url(redis_url))
    record = service.submit(
        spec(
            service,
            kind=REPOSITORY_SETUP,
            cluster=REPOSITORY_SCOPE,
            host="repo1.example.com",
            bundle_sha256=approved,
        )
    )
    run_queue(service)

    done = service.records.require(record.job_id)
    assert done.state is JobState.FAILED
    assert "the bundle changed since approval" in (done.error or ""), done.error
