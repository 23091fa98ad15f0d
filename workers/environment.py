"""The settings and Redis connection a job function runs with.

A worker process configures this once at start (`configure`); RQ's forked horses inherit it. A job
run by some other RQ worker falls back to settings from the environment and RQ's own connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from kobot.settings import Settings, load_settings


@dataclass(frozen=True)
class WorkerEnvironment:
    settings: Settings
    redis: Redis


_configured: WorkerEnvironment | None = None


def configure(*, settings: Settings, redis: Redis) -> None:
    global _configured
    _configured = WorkerEnvironment(settings=settings, redis=redis)


def current() -> WorkerEnvironment:
    if _configured is not None:
        return _configured
    from rq import get_current_job

    job = get_current_job()
    if job is None:
        raise RuntimeError("job functions run inside an RQ worker")
    return WorkerEnvironment(settings=load_settings(), redis=job.connection)
