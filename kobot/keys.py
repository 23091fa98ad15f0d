"""Redis key names for jobs and cluster locks, in one place so no two modules spell them differently."""

from __future__ import annotations

PREFIX = "kobot"

JOB_SEQUENCE = f"{PREFIX}:job:seq"
ACTIVE_JOBS = f"{PREFIX}:jobs:active"
GLOBAL_EVENTS = f"{PREFIX}:events"
NOTIFIER_GROUP = "notifier"


def job(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def job_events(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:events"


def job_message(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:message"


def job_cancel(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:cancel"


def job_lease(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:lease"


def cluster_holder(cluster: str) -> str:
    return f"{PREFIX}:cluster:{cluster}:holder"


def cluster_from_holder_key(key: str) -> str:
    return key.removeprefix(f"{PREFIX}:cluster:").removesuffix(":holder")


def cluster_waiting(cluster: str) -> str:
    return f"{PREFIX}:cluster:{cluster}:waiting"


def node_readiness(cluster: str) -> str:
    """Hash: node name -> "1" (Ready) or "0", as the node watcher last saw the cluster's nodes."""
    # "health" is the name it was stored under before the watcher had its own; kept so nothing is lost
    return f"{PREFIX}:health:{cluster}"


def job_id_of_rq(rq_job_id: str) -> str | None:
    """The kobot job id inside an RQ job id made by `rq_job_id`, or None for another job's id."""
    prefix, _, rest = rq_job_id.partition("-")
    job_id, _, attempt = rest.rpartition("-a")
    return job_id if prefix == "kobot" and job_id and attempt.isdigit() else None


def rq_job_id(job_id: str, attempt: int) -> str:
    """RQ's id for one attempt of a kobot job (a retry is a new RQ job of the same kobot job)."""
    return f"kobot-{job_id}-a{attempt}"
