"""Job records in Redis: ids, the record itself, its progress message, cancel flags and leases.

The worker running a job is the only writer of its record while it runs; the dispatcher writes it
before and the recovery sweep after. The progress message ref lives in its own key because the
notifier writes it concurrently.
"""

from __future__ import annotations

from collections.abc import Iterator

from redis import Redis
from redis.client import Pipeline

from kobot import defaults, keys
from kobot.clock import utcnow
from kobot.conversations import MessageRef
from kobot.errors import NotFoundError
from kobot.job_records import JobRecord
from kobot.store import synced

_SAVE_UNLESS_ENDED = """
local current = redis.call('GET', KEYS[1])
if current then
  local state = cjson.decode(current)['state']
  if state == 'succeeded' or state == 'failed' or state == 'cancelled' then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PERSIST', KEYS[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""


class JobStore:
    """Reads and writes `JobRecord`s; every method is one or two Redis round trips."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._save_unless_ended = redis.register_script(_SAVE_UNLESS_ENDED)

    def next_id(self) -> str:
        return str(self._redis.incr(keys.JOB_SEQUENCE))

    def save(self, record: JobRecord) -> None:
        pipe = self._redis.pipeline(transaction=True)
        self.queue_save(pipe, record)
        pipe.execute()

    def queue_save(self, pipe: Pipeline, record: JobRecord) -> None:
        """Add the writes of `save` to a caller's transaction (a final state and its event land together)."""
        record.updated_at = utcnow()
        pipe.set(keys.job(record.job_id), record.model_dump_json())
        if record.state.finished:
            pipe.srem(keys.ACTIVE_JOBS, record.job_id)
            pipe.expire(keys.job(record.job_id), defaults.JOB_RECORD_TTL_SECONDS)
            pipe.expire(keys.job_events(record.job_id), defaults.JOB_RECORD_TTL_SECONDS)
        else:
            pipe.sadd(keys.ACTIVE_JOBS, record.job_id)
            pipe.persist(keys.job(record.job_id))

    def save_unless_ended(self, record: JobRecord) -> bool:
        """Save a running job's progress, unless its stored record already ended (swept or cancelled
        elsewhere); False then, and nothing is written."""
        record.updated_at = utcnow()
        written = self._save_unless_ended(
            keys=[keys.job(record.job_id), keys.ACTIVE_JOBS], args=[record.model_dump_json(), record.job_id]
        )
        return bool(written)

    def get(self, job_id: str) -> JobRecord | None:
        raw: bytes | None = synced(self._redis.get(keys.job(job_id)))
        return None if raw is None else JobRecord.model_validate_json(raw)

    def require(self, job_id: str) -> JobRecord:
        record = self.get(job_id)
        if record is None:
            raise NotFoundError(f"there is no job {job_id}")
        return record

    def active_ids(self) -> list[str]:
        return sorted((m.decode() for m in synced(self._redis.smembers(keys.ACTIVE_JOBS))), key=_numeric)

    def active(self) -> Iterator[JobRecord]:
        for job_id in self.active_ids():
            record = self.get(job_id)
            if record is not None:
                yield record

    def recent(self, *, limit: int = 20) -> list[JobRecord]:
        last = int(synced(self._redis.get(keys.JOB_SEQUENCE)) or 0)
        records: list[JobRecord] = []
        for number in range(last, 0, -1):
            record = self.get(str(number))
            if record is not None:
                records.append(record)
            if len(records) >= limit:
                break
        return records

    # progress message -------------------------------------------------------------------------
    def message_ref(self, job_id: str) -> MessageRef | None:
        raw: bytes | None = synced(self._redis.get(keys.job_message(job_id)))
        return None if raw is None else MessageRef.model_validate_json(raw)

    def set_message_ref(self, job_id: str, ref: MessageRef) -> None:
        self._redis.set(keys.job_message(job_id), ref.model_dump_json(), ex=defaults.JOB_RECORD_TTL_SECONDS)

    # cancel and lease -------------------------------------------------------------------------
    def request_cancel(self, job_id: str) -> None:
        self._redis.set(keys.job_cancel(job_id), "1", ex=defaults.JOB_TIMEOUT_SECONDS)

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self._redis.exists(keys.job_cancel(job_id)))

    def clear_cancel(self, job_id: str) -> None:
        self._redis.delete(keys.job_cancel(job_id))

    def renew_lease(self, job_id: str, *, worker: str, seconds: float) -> None:
        self._redis.set(keys.job_lease(job_id), worker, px=int(seconds * 1000))

    def lease_alive(self, job_id: str) -> bool:
        return bool(self._redis.exists(keys.job_lease(job_id)))

    def drop_lease(self, job_id: str) -> None:
        self._redis.delete(keys.job_lease(job_id))


def _numeric(job_id: str) -> int:
    return int(job_id) if job_id.isdigit() else 0
