"""The approval card: exactly what will run, who asked, how many approvals from whom, and until when."""

from __future__ import annotations

from bot.approvals.models import ApprovalDecision, ApprovalRequest, ApprovalStatus
from kobot.messages import Button, ButtonStyle, Field, MessageKind, OutgoingMessage, Tone

APPROVE_ACTION = "approval.approve"
REJECT_ACTION = "approval.reject"
ACTION_DECISIONS = {APPROVE_ACTION: ApprovalDecision.APPROVE, REJECT_ACTION: ApprovalDecision.REJECT}

STATUS_TONE = {
    ApprovalStatus.PENDING: Tone.WARNING,
    ApprovalStatus.APPROVED: Tone.SUCCESS,
    ApprovalStatus.REJECTED: Tone.DANGER,
    ApprovalStatus.EXPIRED: Tone.INFO,
}


def render_card(request: ApprovalRequest, *, approve_value: str, reject_value: str) -> OutgoingMessage:
    """The card for the request's current state; buttons only while it is pending."""
    voters = ", ".join(vote.identity.label() for vote in request.votes)
    counted = f"{request.approved_count}/{request.approvals_required} approved"
    if voters:
        counted += f" by {voters}"
    expires = f"{request.expires_at:%Y-%m-%d %H:%M} UTC"
    if request.status is ApprovalStatus.PENDING:
        title = f"Approval needed: {request.command_id} on {request.cluster}"
        status = (
            f"{counted} · needs {request.approvals_required} from {request.approver_role} · expires {expires}"
        )
    elif request.status is ApprovalStatus.APPROVED:
        title = f"Approved: {request.command_id} on {request.cluster}"
        status = counted
    elif request.status is ApprovalStatus.REJECTED:
        by = request.decided_by.identity.label() if request.decided_by else "?"
        title = f"Rejected: {request.command_id} on {request.cluster}"
        status = f"rejected by {by}" + (f" ({request.note})" if request.note else "")
    else:
        title = f"Expired: {request.command_id} on {request.cluster}"
        status = f"expired at {expires} with {counted}; nothing ran"
    buttons: tuple[Button, ...] = ()
    if request.status is ApprovalStatus.PENDING:
        buttons = (
            Button(label="Approve", action_id=APPROVE_ACTION, value=approve_value, style=ButtonStyle.PRIMARY),
            Button(label="Reject", action_id=REJECT_ACTION, value=reject_value, style=ButtonStyle.DANGER),
        )
    return OutgoingMessage(
        kind=MessageKind.APPROVAL,
        title=title,
        tone=STATUS_TONE[request.status],
        status=status,
        body=f"{request.requester.label()} asked: {request.command_text}",
        fields=(
            Field(label="Command", value=request.command_id),
            Field(label="Cluster", value=request.cluster),
            Field(label="Requested by", value=request.requester.label()),
            Field(label="Approvals", value=f"{request.approvals_required} from {request.approver_role}"),
            Field(label="Expires", value=expires),
            Field(label="Request", value=f"#{request.request_id}"),
        ),
        code="\n".join(request.plan_lines) or None,
        buttons=buttons,
        footer="The requester cannot approve their own request; each approver counts once.",
    )
