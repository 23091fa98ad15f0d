"""REST API and operational endpoints: health, metrics, clusters and jobs (read-only).

/metrics answers a bearer token equal to `metrics_token`; without that setting, only while kobot
listens on loopback. Job records leave without their conversations' platform details (`extra`): those
hold reply routes such as DingTalk session webhooks, which let whoever holds them post into the chat.
Nor with the requester's email: a REST reader may see a job, not how to reach the person behind it.

No `from __future__ import annotations` here: FastAPI resolves the dependency annotations at runtime.
"""

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Response
from redis.exceptions import RedisError

from alerts.exposure import loopback_only
from bot.api_audit import bearer_identity
from bot.metrics import exposition
from bot.metrics import metrics as kobot_metrics
from bot.runtime import Runtime
from kobot.clusters import ClusterRecord
from kobot.conversations import Conversation, Identity
from kobot.job_records import JobRecord, JobState
from kobot.risk import Risk
from workers.events import read_job_events

API_CONVERSATION = Conversation(platform="api", conversation_id="rest")
"""REST callers are not in a channel; channel bindings never grant them anything."""


def api_router(runtime: Runtime, *, ping_store: Callable[[], Awaitable[object]]) -> APIRouter:
    """`ping_store`: asks the store for an answer on the event loop (an asyncio client's `ping`)."""
    router = APIRouter()
    caller = bearer_identity(runtime.policy)

    def require(identity: Identity, command_id: str, cluster: str | None) -> None:
        decision = runtime.policy.authorize(
            identity=identity,
            conversation=API_CONVERSATION,
            command_id=command_id,
            risk=Risk.READ,
            cluster=cluster,
        )
        if not decision.allowed:
            raise HTTPException(status_code=403, detail=decision.reason)

    def may(identity: Identity, command_id: str, cluster: str) -> bool:
        return runtime.policy.authorize(
            identity=identity,
            conversation=API_CONVERSATION,
            command_id=command_id,
            risk=Risk.READ,
            cluster=cluster,
        ).allowed

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        # On the event loop: a probe takes no worker thread, and the first probe (the one that tells a
        # start is over) does not wait for anyio to import its thread machinery (about 40 ms; see
        # `bot.app`, which imports it once serve answers).
        try:
            await ping_store()
        except RedisError as exc:
            raise HTTPException(status_code=503, detail="store unavailable") from exc
        return {"status": "ok"}

    metrics_token = runtime.settings.metrics_token
    metrics_public = metrics_token is None and loopback_only(runtime.settings.http_host)

    @router.get("/metrics")
    def metrics(authorization: Annotated[str | None, Header()] = None) -> Response:
        if metrics_token is not None:
            scheme, _, presented = (authorization or "").partition(" ")
            expected = metrics_token.get_secret_value().encode()
            if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected):
                raise HTTPException(
                    status_code=401,
                    detail="a valid bearer token is required",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        elif not metrics_public:
            raise HTTPException(
                status_code=404,
                detail="metrics are served on a loopback listener only, or with KOBOT_METRICS_TOKEN set",
            )
        counts = {state: 0 for state in JobState}
        for record in runtime.jobs.records.active():
            counts[record.state] += 1
        for state, count in counts.items():
            if not state.finished:
                kobot_metrics().jobs.labels(state=state.value).set(count)
        kobot_metrics().queue_depth.set(len(runtime.queue))
        text, content_type = exposition()
        return Response(text, media_type=content_type)

    @router.get("/api/v1/clusters")
    def list_clusters(identity: Annotated[Identity, Depends(caller)]) -> list[ClusterRecord]:
        return [r for r in runtime.clusters.all() if may(identity, "cluster.show", r.name)]

    @router.get("/api/v1/clusters/{name}")
    def get_cluster(name: str, identity: Annotated[Identity, Depends(caller)]) -> ClusterRecord:
        require(identity, "cluster.show", name)
        record = runtime.clusters.get(name)
        if record is None:
            raise HTTPException(status_code=404, detail=f"no cluster {name}")
        return record

    @router.get("/api/v1/jobs/{job_id}")
    def get_job(job_id: str, identity: Annotated[Identity, Depends(caller)]) -> dict[str, Any]:
        record = runtime.jobs.records.get(job_id)
        if record is None:
            raise HTTPException(status_code=404, detail=f"no job {job_id}")
        require(identity, "job.status", record.spec.cluster)
        events = read_job_events(runtime.redis, job_id)
        return {
            **public_job(record),
            "events": [event.model_dump(mode="json") for event in events],
        }

    return router


def public_job(record: JobRecord) -> dict[str, Any]:
    """A job record as REST shows it: conversations and message refs without their platform `extra`,
    the requester without their email (a name and a platform user id say who asked)."""
    data: dict[str, Any] = record.model_dump(mode="json")
    data["spec"]["reply_to"]["extra"] = {}
    data["spec"]["requested_by"].pop("email", None)
    if data.get("message_ref") is not None:
        data["message_ref"]["extra"] = {}
    return data
