"""Approval requests kept in Redis (so they survive a restart), decided by signed button clicks.

Rules a click must pass to count: the payload's signature matches the stored request (id, decision,
plan hash, expiry) under kobot's secret; the click comes from the request's conversation (or one of its
approval channels, for a request asked one-to-one); the request is still pending and not past its
expiry; an approver holds the approver role on the request's cluster, is not the requester (the same
person on another platform is the requester too) and has not approved already. The requester may
withdraw with Reject. Every decision, counted or refused, is audited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from redis.exceptions import WatchError

from bot.approvals import defaults, signing
from bot.approvals.card import ACTION_DECISIONS, render_card
from bot.approvals.models import (
    ApprovalDecision,
    ApprovalOutcome,
    ApprovalRequest,
    ApprovalStatus,
    ApprovalVote,
)
from bot.policy import PolicyStore
from kobot import keys
from kobot.audit import AuditAction, AuditLog
from kobot.conversations import ButtonClick, Conversation, Identity, MessageRef
from kobot.errors import NotFoundError
from kobot.messages import OutgoingMessage

log = logging.getLogger(__name__)

Change = Callable[[ApprovalRequest], "ApprovalRequest | ApprovalOutcome"]


class ApprovalService:
    """Creates approval requests, renders their cards and counts the clicks on them."""

    def __init__(
        self, *, redis: Redis, secret: bytes, policy: PolicyStore, audit: AuditLog | None = None
    ) -> None:
        """With `audit`, every request and decision (refused clicks included) is recorded here; without it
        the caller records them (the dispatcher does)."""
        self._redis = redis
        self._key = signing.derive_key(secret)
        self._policy = policy
        self._audit = audit

    def request(
        self,
        *,
        requester: Identity,
        conversation: Conversation,
        cluster: str,
        command_id: str,
        command_text: str,
        action: dict[str, Any],
        plan_lines: Sequence[str],
        plan_hash: str,
        approvals_required: int,
        approver_role: str,
        ttl_seconds: int = defaults.APPROVAL_TTL_SECONDS,
        approval_channels: Sequence[str] = (),
    ) -> ApprovalRequest:
        """Store a pending request for exactly this plan and return it (post `card(...)` next).

        `approval_channels`: other conversations (keys) whose clicks count, with the same checks."""
        if approvals_required < 1:
            raise ValueError("an approval request needs at least one approval")
        if not plan_hash:
            raise ValueError("an approval request must carry the plan hash it approves")
        now = datetime.now(UTC).replace(microsecond=0)
        request_id = str(self._redis.incr(keys.APPROVAL_SEQUENCE))
        request = ApprovalRequest(
            request_id=request_id,
            requester=requester,
            requester_voter=self._voter(requester),
            conversation=conversation,
            cluster=cluster,
            command_id=command_id,
            command_text=command_text,
            action=action,
            plan_lines=tuple(plan_lines),
            plan_hash=plan_hash,
            approvals_required=approvals_required,
            approver_role=approver_role,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
            approval_channels=tuple(approval_channels),
        )
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(keys.approval(request_id), request.model_dump_json())
        pipe.zadd(keys.APPROVALS_PENDING, {request_id: request.expires_at.timestamp()})
        pipe.execute()
        self._record(
            request,
            who=requester,
            where=conversation,
            action=AuditAction.APPROVAL_REQUESTED,
            result="pending",
        )
        return request

    def get(self, *, request_id: str) -> ApprovalRequest:
        raw = self._redis.get(keys.approval(request_id))
        if raw is None:
            raise NotFoundError(f"approval request #{request_id} does not exist")
        return ApprovalRequest.model_validate_json(raw)  # type: ignore[arg-type]

    def card(self, request: ApprovalRequest) -> OutgoingMessage:
        """The card for the request's current state, with signed Approve/Reject buttons while pending."""
        expires = int(request.expires_at.timestamp())
        values = {
            decision: signing.encode(
                key=self._key,
                request_id=request.request_id,
                decision=decision,
                plan_hash=request.plan_hash,
                expires=expires,
            )
            for decision in ApprovalDecision
        }
        return render_card(
            request,
            approve_value=values[ApprovalDecision.APPROVE],
            reject_value=values[ApprovalDecision.REJECT],
        )

    def attach_message(self, *, request_id: str, ref: MessageRef) -> None:
        """Remember where the card was posted, so expiry and decisions can edit it."""
        self._update(request_id, lambda request: request.model_copy(update={"message_ref": ref}))

    def bind_job(self, *, request_id: str, job_id: str) -> None:
        """Remember that `job_id` runs under this approved request (read back by `approval_of_job`)."""
        self._redis.set(keys.approval_of_job(job_id), request_id, ex=defaults.DECIDED_KEEP_SECONDS)

    # queueing the job of an approved request, exactly once ------------------------------------------

    def claim_run(self, *, request_id: str, owner: str) -> bool:
        """Take the turn to queue an approved request's job; False while another process holds it."""
        return bool(
            self._redis.set(
                keys.approval_run_claim(request_id), owner, nx=True, ex=defaults.RUN_CLAIM_SECONDS
            )
        )

    def renew_run(self, *, request_id: str, owner: str) -> None:
        """Keep the turn while the job is being re-planned and queued."""
        self._redis.set(keys.approval_run_claim(request_id), owner, xx=True, ex=defaults.RUN_CLAIM_SECONDS)

    def release_run(self, *, request_id: str) -> None:
        """Give the turn back without having finished (the sweep tries again)."""
        self._redis.delete(keys.approval_run_claim(request_id))

    def reserve_job(self, *, request_id: str, new_job_id: Callable[[], str]) -> str:
        """The job id this request runs as: the one an earlier try chose, or a new one, kept first."""
        key = keys.approval_job_reserved(request_id)
        existing = self._redis.get(key)
        if existing is None:
            self._redis.set(key, new_job_id(), nx=True, ex=defaults.DECIDED_KEEP_SECONDS)
            existing = self._redis.get(key)
        return existing.decode() if isinstance(existing, bytes) else str(existing)

    def mark_run(self, *, request_id: str, job_id: str | None) -> None:
        """The request's job is queued (bound to it), or it will never run (None: void): either way it
        leaves the unrun set, in one transaction with the binding."""
        pipe = self._redis.pipeline(transaction=True)
        if job_id is not None:
            pipe.set(keys.approval_of_job(job_id), request_id, ex=defaults.DECIDED_KEEP_SECONDS)
        pipe.zrem(keys.APPROVALS_UNRUN, request_id)
        pipe.delete(keys.approval_run_claim(request_id))
        pipe.execute()

    def unrun(self) -> list[ApprovalRequest]:
        """Approved requests whose job is not queued yet (a crash between decision and queueing, or a
        click being handled right now: `claim_run` tells them apart)."""
        ids: list[bytes] = self._redis.zrange(  # type: ignore[assignment]
            keys.APPROVALS_UNRUN, 0, defaults.UNRUN_BATCH - 1
        )
        found: list[ApprovalRequest] = []
        for raw_id in ids:
            request_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            try:
                found.append(self.get(request_id=request_id))
            except NotFoundError:
                self._redis.zrem(keys.APPROVALS_UNRUN, request_id)
        return found

    def job_of(self, *, request: ApprovalRequest) -> str | None:
        """The job an approved request runs as: the one it resumes, or the id reserved for it when it was
        approved (not yet queued while it is being planned, never when its plan changed)."""
        retry_of = request.action.get("retry_of")
        if retry_of is not None:
            return str(retry_of)
        raw = self._redis.get(keys.approval_job_reserved(request.request_id))
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def approval_of_job(self, *, job_id: str) -> ApprovalRequest | None:
        """The request a job ran under, or None when it ran without one (or the request is gone)."""
        raw = self._redis.get(keys.approval_of_job(job_id))
        if raw is None:
            return None
        try:
            return self.get(request_id=raw.decode() if isinstance(raw, bytes) else str(raw))
        except NotFoundError:
            return None

    def still_covers(self, *, request: ApprovalRequest, plan_hash: str, now: datetime | None = None) -> bool:
        """Whether an approval still allows running this plan again: approved, not past its expiry, and
        for the very same plan. Anything else needs a fresh approval."""
        moment = now or datetime.now(UTC)
        return (
            request.status is ApprovalStatus.APPROVED
            and moment < request.expires_at
            and self.plan_matches(request=request, plan_hash=plan_hash)
        )

    def plan_matches(self, *, request: ApprovalRequest, plan_hash: str) -> bool:
        """Whether a fresh plan is still the one approved; a different plan voids the approval."""
        import hmac

        return hmac.compare_digest(request.plan_hash.encode(), plan_hash.encode())

    def decide(self, *, click: ButtonClick) -> ApprovalOutcome:
        """Count a click on an approval button, or refuse it with a reason for the clicking user."""
        decision = ACTION_DECISIONS.get(click.action_id)
        payload = signing.decode(click.value)
        if decision is None or payload is None or payload.decision is not decision:
            return self._refuse(click, None, "This is not a valid approval button.")
        try:
            stored = self.get(request_id=payload.request_id)
        except NotFoundError:
            return self._refuse(click, None, f"Approval request #{payload.request_id} does not exist.")
        expires = int(stored.expires_at.timestamp())
        if not signing.verify(key=self._key, payload=payload, plan_hash=stored.plan_hash, expires=expires):
            return self._refuse(click, stored, "This approval button was not issued for this request.")
        if click.conversation.key != stored.conversation.key and (
            click.conversation.key not in stored.approval_channels
        ):
            return self._refuse(click, stored, "This approval belongs to another conversation.")
        now = click.received_at if click.received_at.tzinfo else click.received_at.replace(tzinfo=UTC)
        now = max(now, datetime.now(UTC))
        voter = self._voter(click.identity)

        def change(request: ApprovalRequest) -> ApprovalRequest | ApprovalOutcome:
            if request.status is not ApprovalStatus.PENDING:
                return _refusal(request, f"This request is already {request.status.value}.")
            if now >= request.expires_at:
                return request.model_copy(update={"status": ApprovalStatus.EXPIRED, "decided_at": now})
            is_requester = voter == request.requester_voter
            if decision is ApprovalDecision.REJECT and is_requester:
                return self._decided(
                    request, click, now, ApprovalStatus.REJECTED, note="withdrawn by the requester"
                )
            if is_requester:
                return _refusal(request, "You cannot approve your own request.")
            roles = self._policy.roles_for(
                identity=click.identity, cluster=request.cluster, conversation=click.conversation
            )
            if request.approver_role not in roles:
                needed = f"the {request.approver_role} role on {request.cluster}"
                return _refusal(request, f"Only someone with {needed} can decide this.")
            if decision is ApprovalDecision.REJECT:
                return self._decided(request, click, now, ApprovalStatus.REJECTED)
            if any(vote.voter == voter for vote in request.votes):
                return _refusal(request, "Your approval is already counted.")
            vote = ApprovalVote(identity=click.identity, voter=voter, at=now)
            votes = (*request.votes, vote)
            if len(votes) >= request.approvals_required:
                return request.model_copy(
                    update={
                        "votes": votes,
                        "status": ApprovalStatus.APPROVED,
                        "decided_by": vote,
                        "decided_at": now,
                    }
                )
            return request.model_copy(update={"votes": votes})

        result = self._update(payload.request_id, change)
        if isinstance(result, ApprovalOutcome):
            self._record(
                result.request or stored,
                who=click.identity,
                where=click.conversation,
                action=AuditAction.APPROVAL_REFUSED,
                result=result.reply or "refused",
            )
            return result
        action = {
            ApprovalStatus.PENDING: AuditAction.APPROVAL_VOTE,
            ApprovalStatus.APPROVED: AuditAction.APPROVAL_APPROVED,
            ApprovalStatus.REJECTED: AuditAction.APPROVAL_REJECTED,
            ApprovalStatus.EXPIRED: AuditAction.APPROVAL_EXPIRED,
        }[result.status]
        self._record(
            result, who=click.identity, where=click.conversation, action=action, result=result.status.value
        )
        reply = "This request expired; nothing will run." if result.status is ApprovalStatus.EXPIRED else None
        return ApprovalOutcome(status=result.status, request=result, card=self.card(result), reply=reply)

    def expire_due(self, *, now: datetime | None = None) -> list[ApprovalOutcome]:
        """Expire every pending request past its expiry; the caller edits each returned card."""
        moment = now or datetime.now(UTC)
        due: list[bytes] = self._redis.zrangebyscore(  # type: ignore[assignment]
            keys.APPROVALS_PENDING, "-inf", moment.timestamp(), start=0, num=defaults.EXPIRE_BATCH
        )
        outcomes: list[ApprovalOutcome] = []
        for raw_id in due:
            request_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)

            def expire(request: ApprovalRequest) -> ApprovalRequest | ApprovalOutcome:
                if request.status is not ApprovalStatus.PENDING or moment < request.expires_at:
                    return ApprovalOutcome(status=request.status, request=request, card=None, reply=None)
                return request.model_copy(update={"status": ApprovalStatus.EXPIRED, "decided_at": moment})

            try:
                result = self._update(request_id, expire)
            except NotFoundError:
                self._redis.zrem(keys.APPROVALS_PENDING, request_id)
                continue
            if isinstance(result, ApprovalRequest):
                self._record(
                    result,
                    who=None,
                    where=result.conversation,
                    action=AuditAction.APPROVAL_EXPIRED,
                    result="expired",
                )
                outcomes.append(
                    ApprovalOutcome(
                        status=ApprovalStatus.EXPIRED, request=result, card=self.card(result), reply=None
                    )
                )
        return outcomes

    def _update(self, request_id: str, change: Change) -> ApprovalRequest | ApprovalOutcome:
        """Apply `change` atomically (optimistic WATCH/MULTI, retried when another click raced this one)."""
        key = keys.approval(request_id)
        for _ in range(defaults.UPDATE_ATTEMPTS):
            with self._redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    raw: bytes | None = pipe.get(key)  # type: ignore[assignment]
                    if raw is None:
                        raise NotFoundError(f"approval request #{request_id} does not exist")
                    before = ApprovalRequest.model_validate_json(raw)
                    result = change(before)
                    if isinstance(result, ApprovalOutcome):
                        pipe.unwatch()
                        return result
                    pipe.multi()
                    if result.status is ApprovalStatus.PENDING:
                        pipe.set(key, result.model_dump_json())
                    else:
                        pipe.set(key, result.model_dump_json(), ex=defaults.DECIDED_KEEP_SECONDS)
                        pipe.zrem(keys.APPROVALS_PENDING, request_id)
                    if (
                        result.status is ApprovalStatus.APPROVED
                        and before.status is not ApprovalStatus.APPROVED
                    ):
                        # with the decision, in its transaction: approved means "its job will be queued"
                        pipe.zadd(keys.APPROVALS_UNRUN, {request_id: datetime.now(UTC).timestamp()})
                    pipe.execute()
                    return result
                except WatchError:
                    continue
        raise RuntimeError(f"approval request #{request_id} kept changing; gave up after retries")

    def _voter(self, identity: Identity) -> str:
        person = self._policy.person_of(identity=identity)
        return f"person:{person}" if person is not None else identity.key.lower()

    def _decided(
        self,
        request: ApprovalRequest,
        click: ButtonClick,
        now: datetime,
        status: ApprovalStatus,
        *,
        note: str | None = None,
    ) -> ApprovalRequest:
        vote = ApprovalVote(identity=click.identity, voter=self._voter(click.identity), at=now)
        return request.model_copy(
            update={"status": status, "decided_by": vote, "decided_at": now, "note": note}
        )

    def _refuse(self, click: ButtonClick, request: ApprovalRequest | None, reason: str) -> ApprovalOutcome:
        outcome = _refusal(request, reason)
        if self._audit is None:
            return outcome
        self._audit.record(
            who=click.identity,
            where=click.conversation,
            action=AuditAction.APPROVAL_REFUSED,
            cluster=request.cluster if request is not None else None,
            detail={
                "request": request.request_id if request is not None else None,
                "action_id": click.action_id,
            },
            result=reason,
        )
        return outcome

    def _record(
        self,
        request: ApprovalRequest,
        *,
        who: Identity | None,
        where: Conversation | None,
        action: AuditAction,
        result: str,
    ) -> None:
        if self._audit is None:
            return
        self._audit.record(
            who=who,
            where=where,
            action=action.value,
            cluster=request.cluster,
            detail={
                "request": request.request_id,
                "command": request.command_id,
                "text": request.command_text,
                "plan_hash": request.plan_hash,
                "approvals": f"{request.approved_count}/{request.approvals_required}",
                "requester": request.requester.key,
            },
            result=result,
        )


def _refusal(request: ApprovalRequest | None, reason: str) -> ApprovalOutcome:
    """A click that did not count: the request (if any) is unchanged, so there is no card to edit."""
    return ApprovalOutcome(status=ApprovalStatus.REFUSED, request=request, card=None, reply=reason)
