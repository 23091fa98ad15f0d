"""Redis key names, in one place so no two modules spell them differently and none collide.

Every key kobot writes starts with `PREFIX`; the parts of kobot that keep state each have their names or
their own prefix here (a package with many keys, as alerts, builds them from its prefix in its keys module).
"""

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


def autoheal_setting(cluster: str) -> str:
    """String: the cluster's autoheal setting (JSON), as `autoheal <cluster> on|off` left it."""
    return f"{PREFIX}:autoheal:{cluster}:setting"


def autoheal_watch(cluster: str) -> str:
    """Hash: what autoheal keeps between rounds (NotReady since when, the replacement under way, what
    it already said), so a restart neither acts twice nor announces again."""
    return f"{PREFIX}:autoheal:{cluster}:watch"


# clusters ---------------------------------------------------------------------------------------
CLUSTERS_INDEX = f"{PREFIX}:clusters"
"""Set: the names of every cluster record."""


def cluster_record(name: str) -> str:
    """String: the cluster's record JSON."""
    return f"{PREFIX}:cluster:{name}:record"


def cluster_secrets(cluster: str) -> str:
    """Hash: secret name -> the secret, encrypted with kobot's key."""
    return f"{PREFIX}:cluster:{cluster}:secrets"


def etcd_access(cluster: str) -> str:
    """String: how to reach the cluster's etcd for backups (encrypted client certificates)."""
    return f"{PREFIX}:cluster:{cluster}:etcd"


def etcd_backup(backup_id: str) -> str:
    """String: one etcd backup's metadata."""
    return f"{PREFIX}:etcd:backup:{backup_id}"


def etcd_backups(cluster: str) -> str:
    """Sorted set: the cluster's backup ids, scored by when they were taken."""
    return f"{PREFIX}:etcd:backups:{cluster}"


BACKUP_SCHEDULES = f"{PREFIX}:etcd:schedules"
"""Hash: cluster name -> its backup schedule (JSON), read by the scheduler loop of every kobot process."""

HEALTH_SCHEDULES = f"{PREFIX}:health-check:schedules"
"""Hash: cluster name -> its health-check schedule (JSON), read by every kobot process's scheduler loop."""

HEALTH_CERT_LOOKS = f"{PREFIX}:health-check:cert-looks"
"""Hash: cluster name -> when its certificates were last looked at (epoch seconds), for expiry notices."""


CIS_SCHEDULES = f"{PREFIX}:cis:schedules"
"""Hash: cluster name -> its CIS scan schedule (JSON), read by every kobot process's scheduler loop."""


def cis_scans(cluster: str) -> str:
    """Hash: scan id (its job id) -> one CIS scan's result JSON, bounded by CIS_SCAN_HISTORY_MAX."""
    return f"{PREFIX}:cis:scans:{cluster}"


def cis_scan_order(cluster: str) -> str:
    """Sorted set: the cluster's scan ids, scored by when each finished."""
    return f"{PREFIX}:cis:scan-order:{cluster}"


def health_findings(cluster: str) -> str:
    """Hash: finding key -> level, as the last scheduled health check saw the cluster."""
    return f"{PREFIX}:health-check:findings:{cluster}"


def cert_notices_sent(cluster: str) -> str:
    """Set: `certificate|not-after|days` of every expiry notice already posted for the cluster."""
    return f"{PREFIX}:health-check:cert-notices:{cluster}"


OFFLINE_REPOSITORY = f"{PREFIX}:offline-repository"
"""The offline repository `setup repository on <host>` recorded for new clusters (JSON)."""


# audit, approvals, policy -------------------------------------------------------------------------
AUDIT_STREAM = f"{PREFIX}:audit"
"""Stream: the audit trail, one entry per thing that happened."""

APPROVAL_SEQUENCE = f"{PREFIX}:approval:seq"
"""Counter: the last approval request id handed out."""

APPROVALS_PENDING = f"{PREFIX}:approvals:pending"
"""Sorted set of pending request ids scored by expiry time."""


def approval(request_id: str) -> str:
    """String: one approval request's JSON."""
    return f"{PREFIX}:approval:{request_id}"


def approval_of_job(job_id: str) -> str:
    """String: the approval request a job ran under, so `retry job N` knows whether it still holds."""
    return f"{PREFIX}:approval:job:{job_id}"


APPROVALS_UNRUN = f"{PREFIX}:approvals:unrun"
"""Sorted set of approved request ids whose job is not queued yet, scored by approval time: written with
the decision, removed with the job's binding, so a crash in between leaves the request for the sweep."""


def approval_run_claim(request_id: str) -> str:
    """String with a TTL: the process now queueing an approved request's job (one at a time)."""
    return f"{PREFIX}:approval:run:{request_id}"


def approval_job_reserved(request_id: str) -> str:
    """String: the job id an approved request runs as, chosen before the job is queued, so a second try
    after a crash finds the job the first one queued instead of queueing another."""
    return f"{PREFIX}:approval:runs-as:{request_id}"


def channel_binding(conversation_key: str) -> str:
    """String: the cluster a channel was bound to from chat (`use prod here`); it wins over the policy
    file's channel binding until `unbind`."""
    return f"{PREFIX}:channel:{conversation_key}:cluster"


LDAP_CACHE_PREFIX = f"{PREFIX}:policy:ldap:"
"""Strings: a directory lookup's groups, cached for a while, under this prefix plus the identity."""

# packages with keys of their own ------------------------------------------------------------------
ALERTS_PREFIX = f"{PREFIX}:alerts"
"""Alert groups, their outbox and routes (names in alerts.keys)."""

NOTIFY_PREFIX = f"{PREFIX}:notify"
"""The message center: who asked for which cluster events, and notices waiting for delivery."""

DINGTALK_PREFIX = f"{PREFIX}:dingtalk"
"""The DingTalk adapter's cards, nicknames and seen-frame marks."""

WECOM_PREFIX = f"{PREFIX}:wecom"
"""The WeCom adapter's access token session, response codes and seen-message marks."""


def job_id_of_rq(rq_job_id: str) -> str | None:
    """The kobot job id inside an RQ job id made by `rq_job_id`, or None for another job's id."""
    prefix, _, rest = rq_job_id.partition("-")
    job_id, _, attempt = rest.rpartition("-a")
    return job_id if prefix == "kobot" and job_id and attempt.isdigit() else None


def rq_job_id(job_id: str, attempt: int) -> str:
    """RQ's id for one attempt of a kobot job (a retry is a new RQ job of the same kobot job)."""
    return f"kobot-{job_id}-a{attempt}"
