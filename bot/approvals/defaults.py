"""Approval timings and Redis keys, each named once with the reason it exists."""

from __future__ import annotations

APPROVAL_TTL_SECONDS = 1800
"""A request not decided within 30 minutes expires: the plan it shows is likely stale by then."""

DECIDED_KEEP_SECONDS = 30 * 24 * 3600
"""A decided request stays readable this long (the audit trail keeps the decision for good)."""

EXPIRE_BATCH = 500
"""Requests expired per `expire_due` call; the rest go on the next call a few seconds later."""

UPDATE_ATTEMPTS = 20
"""Optimistic-lock retries when approvers click at the same moment; each retry re-reads the request."""

RUN_CLAIM_SECONDS = 10
"""The turn to queue an approved request's job lapses this long after its holder last renewed it (it renews
every third of it while it re-plans and queues): a process that died holding it leaves the request to the
sweep of another after about this long."""

UNRUN_BATCH = 50
"""Approved requests without a job looked at per housekeeping round."""
