"""Approvals on a real Valkey: counting, self-approval, forged and replayed clicks, expiry, restart."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis import Redis

from bot.approvals import (
    APPROVE_ACTION,
    REJECT_ACTION,
    ApprovalRequest,
    ApprovalService,
    ApprovalStatus,
)
from bot.approvals.models import ApprovalDecision
from bot.approvals.signing import derive_key, encode
from bot.policy import PolicyStore
from kobot.audit import AuditLog
from kobot.conversations import ButtonClick, Conversation, Identity, MessageRef
from kobot.messages import MessageKind
from kobot.risk import Risk

POLICY = """
people:
  alice: {identities: ["slack:UALICE", "dingtalk:alice01"]}
  bob: {identities: ["slack:UBOB"]}
  carol: {identities: ["slack:UCAROL"]}
  dave: {identities: ["slack:UDAVE"]}
bindings:
  - {role: operator, subjects: ["person:alice"]}
  - {role: admin, subjects: ["person:bob", "person:carol", "person:alice"], clusters: ["prod-*"]}
  - {role: viewer, subjects: ["*"]}
"""

ALICE = Identity(platform="slack", user_id="UALICE", display_name="alice")
ALICE_DINGTALK = Identity(platform="dingtalk", user_id="alice01", display_name="alice")
BOB = Identity(platform="slack", user_id="UBOB", display_name="bob")
CAROL = Identity(platform="slack", user_id="UCAROL", display_name="carol")
DAVE = Identity(platform="slack", user_id="UDAVE", display_name="dave")
OPS = Conversation(platform="slack", conversation_id="COPS")
PLAN = ("destroy 3 VMs of prod-eu", "delete state workspace prod-eu")
PLAN_HASH = hashlib.sha256("\n".join(PLAN).encode()).hexdigest()
SECRET = b"test-secret-" + b"x" * 20


@pytest.fixture
def policy(tmp_path: Path, redis: Redis) -> PolicyStore:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return PolicyStore(path=path, redis=redis)


@pytest.fixture
def service(redis: Redis, redis_url: str, policy: PolicyStore) -> ApprovalService:
    audit = AuditLog(redis=redis, store_url=redis_url)
    return ApprovalService(redis=redis, secret=SECRET, policy=policy, audit=audit)


def _request(service: ApprovalService, *, required: int = 2, ttl: int = 1800) -> ApprovalRequest:
    return service.request(
        requester=ALICE,
        conversation=OPS,
        cluster="prod-eu",
        command_id="cluster.delete",
        command_text="delete cluster prod-eu",
        action={"kind": "cluster.delete", "cluster": "prod-eu", "params": {}},
        plan_lines=PLAN,
        plan_hash=PLAN_HASH,
        approvals_required=required,
        approver_role="admin",
        ttl_seconds=ttl,
    )


def _click(
    service: ApprovalService,
    request: ApprovalRequest,
    who: Identity,
    *,
    action: str = APPROVE_ACTION,
    where: Conversation = OPS,
    at: datetime | None = None,
) -> ButtonClick:
    card = service.card(request)
    button = next(b for b in card.buttons if b.action_id == action)
    extra = {"received_at": at} if at is not None else {}
    return ButtonClick(identity=who, conversation=where, action_id=action, value=button.value, **extra)


def test_card_shows_exactly_what_will_run(service: ApprovalService) -> None:
    request = _request(service)
    card = service.card(request)
    text = card.to_text()
    assert card.kind is MessageKind.APPROVAL
    assert [b.label for b in card.buttons] == ["Approve", "Reject"]
    for expected in (
        *PLAN,
        "cluster.delete",
        "prod-eu",
        "alice",
        "0/2 approved",
        "needs 2 from admin",
        "expires",
    ):
        assert expected in text
    assert request.request_id in text


def test_two_approvers_counted_once_each(service: ApprovalService) -> None:
    request = _request(service)
    first = service.decide(click=_click(service, request, BOB))
    assert first.status is ApprovalStatus.PENDING
    assert first.card is not None and "1/2 approved by bob" in first.card.to_text()
    again = service.decide(click=_click(service, request, BOB))
    assert again.status is ApprovalStatus.REFUSED and again.reply == "Your approval is already counted."
    second = service.decide(click=_click(service, request, CAROL))
    assert second.status is ApprovalStatus.APPROVED
    assert second.request is not None and second.request.plan_hash == PLAN_HASH
    assert second.request.action["kind"] == "cluster.delete"
    assert second.card is not None and not second.card.buttons
    assert "2/2 approved by bob, carol" in second.card.to_text()


def test_requester_cannot_approve_own_request_on_any_platform(service: ApprovalService) -> None:
    request = _request(service, required=1)
    own = service.decide(click=_click(service, request, ALICE))
    assert own.status is ApprovalStatus.REFUSED and own.reply == "You cannot approve your own request."
    ding = Conversation(platform="dingtalk", conversation_id="COPS")
    other = service.decide(click=_click(service, request, ALICE_DINGTALK, where=ding))
    assert other.status is ApprovalStatus.REFUSED
    assert service.get(request_id=request.request_id).status is ApprovalStatus.PENDING


def test_user_without_approver_role_is_refused(service: ApprovalService) -> None:
    request = _request(service, required=1)
    outcome = service.decide(click=_click(service, request, DAVE))
    assert outcome.status is ApprovalStatus.REFUSED
    assert outcome.reply == "Only someone with the admin role on prod-eu can decide this."
    assert outcome.card is None
    reject = service.decide(click=_click(service, request, DAVE, action=REJECT_ACTION))
    assert reject.status is ApprovalStatus.REFUSED


def test_reject_by_approver_and_withdraw_by_requester(service: ApprovalService) -> None:
    rejected = service.decide(click=_click(service, _request(service), CAROL, action=REJECT_ACTION))
    assert rejected.status is ApprovalStatus.REJECTED
    assert rejected.card is not None and "rejected by carol" in rejected.card.to_text()
    withdrawn = service.decide(click=_click(service, _request(service), ALICE, action=REJECT_ACTION))
    assert withdrawn.status is ApprovalStatus.REJECTED
    assert withdrawn.request is not None and withdrawn.request.note == "withdrawn by the requester"


def _forged_variants(
    service: ApprovalService, request: ApprovalRequest, other: ApprovalRequest
) -> dict[str, str]:
    good = _click(service, request, BOB).value
    rid, decision, expires, signature = good.split(".")
    wrong_key = derive_key(b"another-secret")
    return {
        "bad signature": f"{rid}.{decision}.{expires}.{'0' * 64}",
        "flipped bit": f"{rid}.{decision}.{expires}.{signature[:-1]}{'0' if signature[-1] != '0' else '1'}",
        "another request's id": f"{other.request_id}.{decision}.{expires}.{signature}",
        "extended expiry": f"{rid}.{decision}.{int(expires) + 3600}.{signature}",
        "wrong secret": encode(
            key=wrong_key,
            request_id=rid,
            decision=ApprovalDecision.APPROVE,
            plan_hash=PLAN_HASH,
            expires=int(expires),
        ),
        "other plan": encode(
            key=derive_key(SECRET),
            request_id=rid,
            decision=ApprovalDecision.APPROVE,
            plan_hash="0" * 64,
            expires=int(expires),
        ),
        "garbage": "approve-please",
        "empty": "",
    }


def test_forged_clicks_are_refused(service: ApprovalService, redis: Redis, redis_url: str) -> None:
    request = _request(service, required=1)
    other = _request(service, required=1)
    for name, value in _forged_variants(service, request, other).items():
        click = ButtonClick(identity=BOB, conversation=OPS, action_id=APPROVE_ACTION, value=value)
        outcome = service.decide(click=click)
        assert outcome.status is ApprovalStatus.REFUSED, name
        assert outcome.card is None and outcome.reply, name
    reject_value = _click(service, request, BOB, action=REJECT_ACTION).value
    mismatch = ButtonClick(identity=BOB, conversation=OPS, action_id=APPROVE_ACTION, value=reject_value)
    assert service.decide(click=mismatch).status is ApprovalStatus.REFUSED
    elsewhere = Conversation(platform="slack", conversation_id="CELSEWHERE")
    moved = service.decide(click=_click(service, request, BOB, where=elsewhere))
    assert moved.status is ApprovalStatus.REFUSED
    assert moved.reply == "This approval belongs to another conversation."
    for pending in (request, other):
        assert service.get(request_id=pending.request_id).status is ApprovalStatus.PENDING
    refusals = AuditLog(redis=redis, store_url=redis_url).query(action="approval.refused", limit=100)
    assert len(refusals) >= 10


def test_replayed_click_on_decided_request_is_refused(service: ApprovalService) -> None:
    request = _request(service, required=1)
    click = _click(service, request, BOB)
    assert service.decide(click=click).status is ApprovalStatus.APPROVED
    replay = service.decide(click=click)
    assert replay.status is ApprovalStatus.REFUSED and replay.reply == "This request is already approved."
    late = service.decide(click=_click(service, request, CAROL, action=REJECT_ACTION))
    assert late.status is ApprovalStatus.REFUSED


def test_expiry(service: ApprovalService) -> None:
    request = _request(service, ttl=600)
    other = _request(service, ttl=3600)
    assert service.expire_due() == []
    later = datetime.now(UTC) + timedelta(seconds=601)
    outcomes = service.expire_due(now=later)
    assert [o.request.request_id for o in outcomes if o.request] == [request.request_id]
    assert outcomes[0].status is ApprovalStatus.EXPIRED
    assert outcomes[0].card is not None and not outcomes[0].card.buttons
    assert "Expired" in outcomes[0].card.title
    assert service.expire_due(now=later) == []
    refused = service.decide(click=_click(service, request, BOB))
    assert refused.status is ApprovalStatus.REFUSED and refused.reply == "This request is already expired."
    clicked_late = service.decide(
        click=_click(service, other, BOB, at=datetime.now(UTC) + timedelta(hours=2))
    )
    assert clicked_late.status is ApprovalStatus.EXPIRED
    assert service.get(request_id=other.request_id).status is ApprovalStatus.EXPIRED


def test_survives_restart(redis_url: str, policy: PolicyStore) -> None:
    first = ApprovalService(redis=Redis.from_url(redis_url), secret=SECRET, policy=policy)
    request = _request(first)
    ref = MessageRef(platform="slack", conversation_id="COPS", message_id="1700000000.0001")
    first.attach_message(request_id=request.request_id, ref=ref)
    assert first.decide(click=_click(first, request, BOB)).status is ApprovalStatus.PENDING
    old_card_click = _click(first, request, CAROL)

    second = ApprovalService(redis=Redis.from_url(redis_url), secret=SECRET, policy=policy)
    stored = second.get(request_id=request.request_id)
    assert stored.message_ref == ref and stored.approved_count == 1 and stored.plan_hash == PLAN_HASH
    outcome = second.decide(click=old_card_click)
    assert outcome.status is ApprovalStatus.APPROVED

    rotated = ApprovalService(redis=Redis.from_url(redis_url), secret=b"rotated", policy=policy)
    again = _request(second)
    assert rotated.decide(click=_click(second, again, BOB)).status is ApprovalStatus.REFUSED


def test_concurrent_approvals_both_count(service: ApprovalService) -> None:
    request = _request(service, required=2)
    clicks = [_click(service, request, BOB), _click(service, request, CAROL)]
    results: list[ApprovalStatus] = []
    threads = [
        threading.Thread(target=lambda c=c: results.append(service.decide(click=c).status)) for c in clicks
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(results) == sorted([ApprovalStatus.PENDING, ApprovalStatus.APPROVED])
    assert service.get(request_id=request.request_id).approved_count == 2


def test_plan_hash_binds_the_approval(service: ApprovalService) -> None:
    request = _request(service, required=1)
    assert service.plan_matches(request=request, plan_hash=PLAN_HASH)
    assert not service.plan_matches(request=request, plan_hash=hashlib.sha256(b"other plan").hexdigest())
    with pytest.raises(ValueError):
        service.request(
            requester=ALICE,
            conversation=OPS,
            cluster="prod-eu",
            command_id="cluster.delete",
            command_text="x",
            action={},
            plan_lines=(),
            plan_hash="",
            approvals_required=1,
            approver_role="admin",
        )


def test_decisions_are_audited(service: ApprovalService, redis: Redis, redis_url: str) -> None:
    request = _request(service, required=1)
    service.decide(click=_click(service, request, BOB))
    actions = [entry.action for entry in AuditLog(redis=redis, store_url=redis_url).query(cluster="prod-eu")]
    assert actions == ["approval.approved", "approval.requested"]


def test_without_audit_log_the_caller_records(redis: Redis, redis_url: str, policy: PolicyStore) -> None:
    quiet = ApprovalService(redis=redis, secret=SECRET, policy=policy)
    request = _request(quiet, required=1)
    assert request.id == request.request_id
    assert quiet.decide(click=_click(quiet, request, BOB)).status is ApprovalStatus.APPROVED
    assert AuditLog(redis=redis, store_url=redis_url).query() == []


def test_flow_from_authorization_to_approved_plan(service: ApprovalService, policy: PolicyStore) -> None:
    """The dispatcher's path: authorize, ask, count clicks, check the plan is still the approved one."""
    decision = policy.authorize(
        identity=ALICE, conversation=OPS, command_id="cluster.delete", risk=Risk.RISKY, cluster="prod-eu"
    )
    assert decision.allowed and decision.needs_approval
    assert (decision.approvals_required, decision.approver_role) == (1, "admin")
    request = service.request(
        requester=ALICE,
        conversation=OPS,
        cluster="prod-eu",
        command_id="cluster.delete",
        command_text="delete cluster prod-eu",
        action={"kind": "cluster.delete"},
        plan_lines=PLAN,
        plan_hash=PLAN_HASH,
        approvals_required=decision.approvals_required,
        approver_role=decision.approver_role or "admin",
    )
    assert service.decide(click=_click(service, request, DAVE)).status is ApprovalStatus.REFUSED
    outcome = service.decide(click=_click(service, request, BOB))
    assert outcome.status is ApprovalStatus.APPROVED and outcome.request is not None
    assert service.plan_matches(request=outcome.request, plan_hash=PLAN_HASH)
