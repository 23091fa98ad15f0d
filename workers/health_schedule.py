"""Scheduled health checks and certificate-expiry notices, run by every long-running kobot process.

`check prod every day at 08:00` stores a schedule (`workers.schedule_slots`, the backups' mechanism:
one claim per slot across processes, a missed slot runs once). A due check runs on a thread, and what
got worse since the last scheduled check (a new finding, or warning become critical) is posted once to
the channels that asked for `health` (or `node`) notices; the same state seen again is not posted again,
and the findings are kept in Redis, so a restart does not post them anew.
Certificates are looked at with every scheduled check, and every `CERT_WATCH_INTERVAL_SECONDS` for a
running cluster without one; each threshold (settings `health.cert_notice_days`) is posted once per
certificate.
A check is not an RQ job: it only reads, and must not wait for (or hold) the cluster's job lock.
"""

from __future__ import annotations

import asyncio
import logging
import time as clock
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Protocol

from redis import Redis

from kobot import defaults, keys
from kobot.background import BackgroundTask, every
from kobot.clock import utcnow
from kobot.clusters import ClusterState, ClusterStore
from kobot.errors import KobotError
from kobot.messages import OutgoingMessage
from kobot.store import synced
from workers import etcd
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets
from workers.health_cards import expiry_notice, node_worsened_notice, worsened_notice
from workers.health_certs import CertificateSeen
from workers.health_check import (
    Finding,
    HealthArea,
    HealthLevel,
    HealthReport,
    check_cluster,
    look_at_certificates,
)
from workers.schedule_slots import SlotSchedule, SlotStore

log = logging.getLogger(__name__)

HEALTH_WORSENED_EVENT = "health_worsened"
"""The message-center event of a worse scheduled check (alerts.subscriptions.ClusterEvent holds it)."""

NODE_HEALTH_WORSENED_EVENT = "node_health_worsened"
"""The same, with the node findings alone: what `node` channels hear (they may not read every namespace)."""

CERT_EXPIRY_EVENT = "cert_expiry_near"
"""The message-center event of a certificate-expiry notice (`notify … certificate`)."""


class HealthCheckSchedule(SlotSchedule):
    """`check prod every day at 08:00`, as stored."""

    at: time = time(8, 0)
    set_by: str = ""

    def describe(self) -> str:
        upcoming = f"{self.next_run_at:%Y-%m-%d %H:%M} UTC"
        return f"{self.cluster}: {self.when()} {self.timezone}; next {upcoming}"


class HealthScheduleStore(SlotStore[HealthCheckSchedule]):
    def __init__(self, redis: Redis) -> None:
        super().__init__(redis=redis, key=keys.HEALTH_SCHEDULES, model=HealthCheckSchedule)


class NoticePublisher(Protocol):
    """Queues a message-center notice for the conversations subscribed to `event` of `cluster`."""

    async def publish_cluster_event(self, *, cluster: str, event: str, message: OutgoingMessage) -> None: ...


def worse_than_before(redis: Redis, report: HealthReport) -> list[Finding]:
    """Findings new since the last scheduled check, or of a higher level than then."""
    before = {
        k.decode(): v.decode() for k, v in synced(redis.hgetall(keys.health_findings(report.cluster))).items()
    }
    return [
        finding
        for finding in report.findings
        if finding.level.rank > HealthLevel(before.get(finding.key, HealthLevel.OK.value)).rank
    ]


def remember(redis: Redis, report: HealthReport) -> None:
    """Keep what this check found; of an area it could not see, what was known before (an API server
    that did not answer for one round does not make its NotReady node news again afterwards)."""
    key = keys.health_findings(report.cluster)
    unseen = {area.value for area in report.unseen}
    before = {k.decode(): v.decode() for k, v in synced(redis.hgetall(key)).items()}
    found = {k: v for k, v in before.items() if k.split("|", 1)[0] in unseen}
    found.update({f.key: f.level.value for f in report.findings})
    with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        if found:
            pipe.hset(key, mapping=found)
        pipe.execute()


def expiry_notices_due(
    redis: Redis,
    *,
    cluster: str,
    certificates: Sequence[CertificateSeen],
    now: datetime,
    thresholds: Sequence[int] = defaults.CERT_EXPIRY_NOTICE_DAYS,
) -> list[tuple[CertificateSeen, list[str]]]:
    """Certificates past a notice threshold not posted yet, each with the marks to record once posted."""
    due: list[tuple[CertificateSeen, list[str]]] = []
    sent = {m.decode() for m in synced(redis.smembers(keys.cert_notices_sent(cluster)))}
    for cert in certificates:
        days = cert.days_left(now)
        crossed = [d for d in thresholds if days <= d]
        marks = [f"{cert.name}|{cert.not_after.isoformat()}|{d}" for d in crossed]
        # a certificate first seen at 5 days left gets one notice, not one per threshold it is past
        if any(mark not in sent for mark in marks):
            due.append((cert, marks))
    return due


def claim_expiry_notices(
    redis: Redis,
    *,
    cluster: str,
    certificates: Sequence[CertificateSeen],
    now: datetime,
    thresholds: Sequence[int] = defaults.CERT_EXPIRY_NOTICE_DAYS,
) -> list[CertificateSeen]:
    """The certificates whose notice this process is to post: their marks are added before the post
    (SADD answers how many were new), so of two processes looking at once only one posts each; a post
    that then fails is not tried again, which beats posting every notice twice."""
    claimed: list[CertificateSeen] = []
    key = keys.cert_notices_sent(cluster)
    for cert, marks in expiry_notices_due(
        redis, cluster=cluster, certificates=certificates, now=now, thresholds=thresholds
    ):
        if int(synced(redis.sadd(key, *marks))) > 0:
            claimed.append(cert)
    return claimed


@dataclass(frozen=True)
class _Look:
    """What one round found of one cluster, to post from the event loop."""

    cluster: str
    report: HealthReport | None
    worse: list[Finding]
    expiring: list[CertificateSeen]


class HealthCheckScheduler:
    """Runs due health checks and certificate looks each interval and posts what must be posted."""

    def __init__(
        self,
        *,
        redis: Redis,
        secrets: ClusterSecrets,
        publisher: NoticePublisher,
        notice_days: Sequence[int] = defaults.CERT_EXPIRY_NOTICE_DAYS,
        interval: float = defaults.HEALTH_SCHEDULER_INTERVAL_SECONDS,
    ) -> None:
        self._redis = redis
        self._secrets = secrets
        self._publisher = publisher
        self._notice_days = tuple(notice_days)
        self._interval = interval
        self._task = BackgroundTask("kobot-health-checks")

    async def start(self) -> None:
        # at once on start: a check missed while kobot was down runs now (once)
        self._task.start(every(self._interval, self.run_once, log=log, what="scheduled health checks"))

    async def stop(self) -> None:
        await self._task.stop()

    async def run_once(self, now: datetime | None = None) -> list[HealthReport]:
        """One round over every running cluster; the reports of the checks that ran. The round's Redis
        work and checks run on one thread (the client is synchronous); only the posting is awaited on
        the event loop, and what was found is remembered on a thread again once it is posted."""
        now = now or utcnow()
        looks = await asyncio.to_thread(self._round, now)
        posted: list[HealthReport] = []
        for look in looks:
            try:
                await self._post(look, now)
            except Exception:
                # remembered only once posted: a failed post is tried again next time
                log.exception("health notices of %s not posted", look.cluster)
                continue
            if look.report is not None:
                posted.append(look.report)
        if posted:
            await asyncio.to_thread(self._remember, posted)
        return [look.report for look in looks if look.report is not None]

    def _remember(self, reports: list[HealthReport]) -> None:
        for report in reports:
            remember(self._redis, report)

    def _round(self, now: datetime) -> list[_Look]:
        store = HealthScheduleStore(self._redis)
        looks: list[_Look] = []
        for record in ClusterStore(self._redis).all():
            if record.state is not ClusterState.RUNNING:
                continue
            cluster = record.name
            try:
                if store.claim_due(cluster=cluster, now=now, advance=lambda s: self._advance(s, now)):
                    report = self._check(cluster, now)
                    if report is not None:
                        worse = worse_than_before(self._redis, report)
                        expiring = self._claim_expiring(cluster, list(report.certificates), now)
                        looks.append(_Look(cluster, report, worse, expiring))
                elif store.get(cluster) is None and self._cert_look_due(cluster):
                    expiring = self._claim_expiring(cluster, self._certificates(cluster), now)
                    looks.append(_Look(cluster, None, [], expiring))
            except KobotError as exc:
                log.warning("health check of %s: %s", cluster, exc.user_message)
        return looks

    def _claim_expiring(
        self, cluster: str, seen: list[CertificateSeen], now: datetime
    ) -> list[CertificateSeen]:
        return claim_expiry_notices(
            self._redis, cluster=cluster, certificates=seen, now=now, thresholds=self._notice_days
        )

    @staticmethod
    def _advance(schedule: HealthCheckSchedule, now: datetime) -> None:
        schedule.next_run_at = schedule.following(now)

    def _kubeconfig(self, cluster: str) -> bytes | None:
        return self._secrets.get(cluster=cluster, name=KUBECONFIG_SECRET)

    def _check(self, cluster: str, now: datetime) -> HealthReport | None:
        kubeconfig = self._kubeconfig(cluster)
        if kubeconfig is None:
            log.warning("scheduled health check of %s skipped: kobot holds no kubeconfig for it", cluster)
            return None
        access = etcd.load_access(redis=self._redis, cluster=cluster)
        self._redis.hset(keys.HEALTH_CERT_LOOKS, cluster, str(clock.time()))
        return check_cluster(kubeconfig=kubeconfig, cluster=cluster, etcd_access=access, now=now)

    def _cert_look_due(self, cluster: str) -> bool:
        last: bytes | str | None = synced(self._redis.hget(keys.HEALTH_CERT_LOOKS, cluster))
        return last is None or clock.time() - float(last) >= defaults.CERT_WATCH_INTERVAL_SECONDS

    def _certificates(self, cluster: str) -> list[CertificateSeen]:
        self._redis.hset(keys.HEALTH_CERT_LOOKS, cluster, str(clock.time()))
        kubeconfig = self._kubeconfig(cluster)
        if kubeconfig is None:
            return []
        access = etcd.load_access(redis=self._redis, cluster=cluster)
        return look_at_certificates(kubeconfig=kubeconfig, cluster=cluster, etcd_access=access)

    async def _post(self, look: _Look, now: datetime) -> None:
        report, worse = look.report, look.worse
        if report is not None and worse:
            await self._publisher.publish_cluster_event(
                cluster=look.cluster, event=HEALTH_WORSENED_EVENT, message=worsened_notice(report, worse)
            )
            nodes = [f for f in worse if f.area is HealthArea.NODES]
            if nodes:
                await self._publisher.publish_cluster_event(
                    cluster=look.cluster,
                    event=NODE_HEALTH_WORSENED_EVENT,
                    message=node_worsened_notice(report, nodes),
                )
        for cert in look.expiring:
            await self._publisher.publish_cluster_event(
                cluster=look.cluster,
                event=CERT_EXPIRY_EVENT,
                message=expiry_notice(cluster=look.cluster, cert=cert, now=now),
            )
