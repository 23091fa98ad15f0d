"""The event stream: each job event goes to the job's own stream (history) and the global one (notifier)."""

from __future__ import annotations

from redis import Redis
from redis.client import Pipeline

from kobot import defaults, keys
from kobot.job_records import JobEvent
from kobot.store import synced


class EventPublisher:
    """Appends job events to Redis streams. Workers publish; the notifier consumes."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    def publish(self, event: JobEvent) -> str:
        pipe = self._redis.pipeline(transaction=False)
        self.queue_publish(pipe, event)
        _, global_id = pipe.execute()
        return global_id.decode() if isinstance(global_id, bytes) else str(global_id)

    @staticmethod
    def queue_publish(pipe: Pipeline, event: JobEvent) -> None:
        """Add the event's writes to a caller's pipeline or transaction."""
        payload = event.model_dump_json()
        pipe.xadd(
            keys.job_events(event.job_id), {"e": payload}, maxlen=defaults.JOB_EVENTS_MAX, approximate=True
        )
        pipe.xadd(keys.GLOBAL_EVENTS, {"e": payload}, maxlen=defaults.GLOBAL_EVENTS_MAX, approximate=True)


def read_job_events(redis: Redis, job_id: str, *, count: int = 1000) -> list[JobEvent]:
    """A job's events, oldest first (for the REST API and `job status`)."""
    entries = synced(redis.xrange(keys.job_events(job_id), count=count))
    return [JobEvent.model_validate_json(fields[b"e"]) for _, fields in entries]
