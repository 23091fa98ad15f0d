"""Helpers for job tests: settings on the fixture playbooks, a job service, and a real RQ worker run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from redis import Redis
from rq.serializers import JSONSerializer

from kobot.conversations import Conversation, Identity
from kobot.job_records import JobRecord, JobSpec
from kobot.settings import Settings
from tests.support.waiting import wait_for as wait_for  # the job tests import it from here
from workers import environment
from workers.operations import load_operations
from workers.rq_workers import ThreadWorker
from workers.service import JobService

FIXTURE_PLAYBOOKS = Path(__file__).resolve().parents[1] / "fixtures" / "playbooks"
PLUGIN = "tests.fixtures.operations"

ALICE = Identity(platform="terminal", user_id="alice", display_name="Alice")
HERE = Conversation(platform="terminal", conversation_id="local")


def job_settings(redis_url: str, data_dir: Path, **overrides: object) -> Settings:
    from pydantic import SecretStr

    values: dict[str, object] = {
        "redis_url": SecretStr(redis_url),
        "data_dir": data_dir,
        "playbooks_dir": FIXTURE_PLAYBOOKS,
        "plugins": [PLUGIN],
        "job_lease_seconds": 2.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def job_service(settings: Settings, redis: Redis) -> JobService:
    environment.configure(settings=settings, redis=redis)
    load_operations(settings.plugins)
    return JobService(redis=redis, queue_name=settings.queue_name)


def spec(service: JobService, *, kind: str, cluster: str = "demo", **params: object) -> JobSpec:
    return service.new_spec(
        kind=kind, cluster=cluster, params=dict(params), requested_by=ALICE, reply_to=HERE
    )


def run_queue(service: JobService) -> None:
    """Run every queued job with a real RQ SimpleWorker (its thread-safe variant) until the queue is empty."""
    ThreadWorker([service.queue], connection=service.redis, serializer=JSONSerializer).work(
        burst=True, logging_level="WARNING"
    )


def task_started(redis: Redis, job_id: str, task: str) -> Callable[[], bool]:
    """A predicate for `wait_for`: the job's event stream shows that `task` started."""
    from kobot.job_records import JobEventType
    from workers.events import read_job_events

    def started() -> bool:
        return any(
            e.type is JobEventType.TASK_STARTED and e.task == task for e in read_job_events(redis, job_id)
        )

    return started


def reload(service: JobService, record: JobRecord) -> JobRecord:
    return service.records.require(record.job_id)
