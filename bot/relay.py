"""Turns job events into message-center notices: channels that said `notify <cluster> job here` hear
when a job on that cluster starts, succeeds or fails; `backup` subscribers hear about etcd backups.

Its own consumer group on the event stream, acknowledged only after the notice is queued (the alert
service then delivers it with retries), so a crash re-reads rather than drops.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import TYPE_CHECKING

from redis import Redis

from commands.job_card import render_job
from kobot import defaults, keys
from kobot.background import BackgroundTask, ensure_consumer_group
from kobot.job_records import JobEvent, JobEventType, JobKind
from kobot.store import synced
from workers.job_store import JobStore

if TYPE_CHECKING:
    from workers.health_schedule import NoticePublisher

log = logging.getLogger(__name__)

GROUP = "relay:cluster-events"

JOB_NOTICES = {
    JobEventType.JOB_STARTED: "job_started",
    JobEventType.JOB_SUCCEEDED: "job_succeeded",
    JobEventType.JOB_FAILED: "job_failed",
}
BACKUP_NOTICES = {JobEventType.JOB_SUCCEEDED: "backup_succeeded", JobEventType.JOB_FAILED: "backup_failed"}


class ClusterEventRelay:
    def __init__(self, *, redis: Redis, alerts: NoticePublisher) -> None:
        self._redis = redis
        self._alerts = alerts
        self._jobs = JobStore(redis)
        self._consumer = f"{socket.gethostname()}:{os.getpid()}"
        self._task = BackgroundTask("cluster-event-relay")

    async def start(self) -> None:
        ensure_consumer_group(self._redis, stream=keys.GLOBAL_EVENTS, group=GROUP, start_id="$")
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        last_claim = 0.0
        while True:
            try:
                if time.monotonic() - last_claim > defaults.NOTIFIER_CLAIM_IDLE_MS / 3000:
                    # entries read but never acknowledged (an error, or a relay that died) are taken again
                    await self._handle(self._claim_abandoned())
                    last_claim = time.monotonic()
                await self._handle(await asyncio.to_thread(self._read))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cluster event relay hit an error; continuing")
                await asyncio.sleep(1)

    async def _handle(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        for entry_id, fields in entries:
            await self._relay(JobEvent.model_validate_json(fields[b"e"]))
            self._redis.xack(keys.GLOBAL_EVENTS, GROUP, entry_id)

    def _claim_abandoned(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        _, claimed, _ = synced(
            self._redis.xautoclaim(
                keys.GLOBAL_EVENTS,
                GROUP,
                self._consumer,
                min_idle_time=defaults.NOTIFIER_CLAIM_IDLE_MS,
                start_id="0-0",
                count=200,
            )
        )
        return [entry for entry in claimed if entry and entry[1]]

    def _read(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        response = synced(
            self._redis.xreadgroup(
                GROUP,
                self._consumer,
                {keys.GLOBAL_EVENTS: ">"},
                count=200,
                block=defaults.NOTIFIER_BLOCK_MS * 5,
            )
        )
        return list(response[0][1]) if response else []

    async def _relay(self, event: JobEvent) -> None:
        notice = JOB_NOTICES.get(event.type)
        if notice is None:
            return
        record = self._jobs.get(event.job_id)
        if record is None:
            return
        message = render_job(record)
        cluster = record.spec.cluster
        await self._alerts.publish_cluster_event(cluster=cluster, event=notice, message=message)
        backup = BACKUP_NOTICES.get(event.type)
        if record.spec.kind == JobKind.ETCD_BACKUP.value and backup is not None:
            await self._alerts.publish_cluster_event(cluster=cluster, event=backup, message=message)
