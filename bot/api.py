"""REST API and operational endpoints: health, metrics, clusters and jobs (read-only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from bot.clusters import ClusterRecord
from bot.metrics import JOBS, QUEUE_DEPTH
from bot.runtime import Runtime
from workers.events import read_job_events
from workers.spec import JobState


def api_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        try:
            runtime.redis.ping()
        except RedisError as exc:
            raise HTTPException(status_code=503, detail="store unavailable") from exc
        return {"status": "ok"}

    @router.get("/metrics")
    def metrics() -> Response:
        counts = {state: 0 for state in JobState}
        for record in runtime.jobs.jobs.active():
            counts[record.state] += 1
        for state, count in counts.items():
            if not state.finished:
                JOBS.labels(state=state.value).set(count)
        QUEUE_DEPTH.set(len(runtime.queue))
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @router.get("/api/v1/clusters")
    def list_clusters() -> list[ClusterRecord]:
        return runtime.clusters.all()

    @router.get("/api/v1/clusters/{name}")
    def get_cluster(name: str) -> ClusterRecord:
        record = runtime.clusters.get(name)
        if record is None:
            raise HTTPException(status_code=404, detail=f"no cluster {name}")
        return record

    @router.get("/api/v1/jobs/{job_id}")
    def get_job(job_id: str) -> dict[str, Any]:
        record = runtime.jobs.jobs.get(job_id)
        if record is None:
            raise HTTPException(status_code=404, detail=f"no job {job_id}")
        events = read_job_events(runtime.redis, job_id)
        return {
            **record.model_dump(mode="json"),
            "events": [event.model_dump(mode="json") for event in events],
        }

    return router
