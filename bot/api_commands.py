"""`POST /api/v1/commands`: a command over REST, through the same dispatcher as a chat line.

The body is the text a person would type (`{"text": "scale workers 5 on prod"}`) or the command typed
(`{"command": "workers.scale", "cluster": "prod", "args": {"count": 5}}`). Either way the dispatcher
authorizes it for the caller's `api:<name>` identity (bot.api_audit.bearer_identity), asks for approval
when the policy wants one (the request goes to the cluster's approval channels: a REST caller is alone
in its conversation, like a one-to-one chat), queues the job and audits all of it. What the dispatcher
would have said in chat comes back in the HTTP answer (`replies`), together with the job id, which
`GET /api/v1/jobs/{id}` follows, or the approval request, which `GET /api/v1/approvals/{id}` follows to
the job it runs as once approved.

Answers: 200 answered at once, 202 queued or waiting for approval, 403 refused by the policy, 404/409 a
named thing that does not exist or cannot be changed now, 422 not understood (with "did you mean"), 503
the store is down. An unexpected failure is a 500 carrying only a reference the operators find in the log.

No `from __future__ import annotations` here: FastAPI resolves the route's annotations at runtime.
"""

import json
import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from bot.api_audit import bearer_identity
from bot.api_command_models import (
    REQUEST_EXAMPLES,
    RESPONSES,
    ApprovalAnswer,
    CommandAnswer,
    CommandProblem,
    CommandReply,
    CommandRequest,
)
from bot.api_replies import REST_CONVERSATION, RestReplies
from bot.approvals import ApprovalRequest, ApprovalStatus
from bot.command_outcome import CommandOutcome, Handled
from bot.dispatcher_soon import DispatcherSoon
from bot.runtime import Runtime
from commands.parsed import ParsedCommand
from commands.registry import COMMANDS
from kobot import validation
from kobot.automation_values import ALLOW_LOCAL_HOSTS
from kobot.conversations import Identity, InboundMessage
from kobot.errors import (
    CommandError,
    ConflictError,
    KobotError,
    NotFoundError,
    PermissionDeniedError,
    StoreUnavailableError,
)
from kobot.messages import OutgoingMessage
from kobot.risk import Risk

log = logging.getLogger(__name__)

COMMANDS_PATH = "/api/v1/commands"
APPROVALS_PATH = "/api/v1/approvals"
JOBS_PATH = "/api/v1/jobs"
FOLLOW_COMMAND = "job.status"
"""Following a command's approval over REST is reading its job's status: the same permission."""

CONVERSATION_COMMANDS = frozenset(
    {"channel.bind", "channel.unbind", "alerts.subscribe", "alerts.unsubscribe", "notify"}
)
"""Commands about the conversation they are typed in; every REST caller shares one, so they are refused."""

ERROR_STATUS: tuple[tuple[type[KobotError], int], ...] = (
    (CommandError, 422),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (StoreUnavailableError, 503),
)
"""The HTTP status of an expected error, first match wins; any other expected error is a 422."""


def commands_router(*, runtime: Runtime, dispatching: DispatcherSoon, replies: RestReplies) -> APIRouter:
    """The route of REST commands; `replies` must be the `api` adapter the dispatcher sends to."""
    router = APIRouter()
    caller = bearer_identity(runtime.policy)
    allow_local = runtime.settings.allow_local_hosts

    @router.post(
        COMMANDS_PATH,
        response_model=CommandAnswer,
        responses=RESPONSES,
        summary="Run a command as if typed in chat",
    )
    async def run_command(
        identity: Annotated[Identity, Depends(caller)],
        body: Annotated[CommandRequest, Body(openapi_examples=REQUEST_EXAMPLES)],
    ) -> JSONResponse:
        # built first: with it come the command catalog, the parser and the grammar this route uses
        try:
            dispatcher = await dispatching.dispatcher()
        except Exception:
            ref = uuid.uuid4().hex[:12]
            log.exception("building the dispatcher failed [ref %s] for a REST command", ref)
            return _answer(CommandOutcome(handled=Handled.FAILED, ref=ref), [])
        try:
            typed = typed_command(body, allow_local_hosts=allow_local) if body.command is not None else None
            text = body.text if body.text is not None else _as_text(body)
            _refuse_conversation_commands(typed or _pre_parse(text, allow_local_hosts=allow_local))
        except CommandError as exc:
            return _answer(CommandOutcome(handled=Handled.NOT_UNDERSTOOD, error=exc), [])
        message = InboundMessage(identity=identity, conversation=REST_CONVERSATION, text=text)
        with replies.collecting() as said:
            outcome = await dispatcher.handle(message, parsed=typed)
        return _answer(outcome, said)

    @router.get(
        APPROVALS_PATH + "/{request_id}",
        response_model=ApprovalAnswer,
        responses={403: {"description": "Not allowed to follow jobs on its cluster."}, 404: {}},
        summary="Follow a command's approval request to the job it runs as",
    )
    def get_approval(
        request_id: Annotated[str, PathParam(pattern=r"^[0-9]{1,20}$")],
        identity: Annotated[Identity, Depends(caller)],
    ) -> ApprovalAnswer:
        try:
            request = runtime.approvals.get(request_id=request_id)
        except NotFoundError:
            raise HTTPException(status_code=404, detail=f"no approval request {request_id}") from None
        decision = runtime.policy.authorize(
            identity=identity,
            conversation=REST_CONVERSATION,
            command_id=FOLLOW_COMMAND,
            risk=Risk.READ,
            cluster=request.cluster,
        )
        if not decision.allowed:
            raise HTTPException(status_code=403, detail=decision.reason)
        job_id = (
            runtime.approvals.job_of(request=request) if request.status is ApprovalStatus.APPROVED else None
        )
        if job_id is not None and runtime.jobs.records.get(job_id) is None:
            job_id = None  # reserved, not queued yet (or never: its plan changed)
        return _approval(request, job_id=job_id)

    return router


def typed_command(body: CommandRequest, *, allow_local_hosts: bool) -> ParsedCommand:
    """A typed body as the parser would have understood the same command typed in chat."""
    from commands.grammar import close_matches  # imported with the dispatcher, as `_pre_parse`'s parser

    command_id = body.command or ""
    spec = COMMANDS.get(command_id)
    if spec is None:
        raise CommandError(
            f"There is no command `{command_id}`; `help` lists them.",
            suggestions=close_matches(command_id, sorted(COMMANDS)),
        )
    cluster = body.cluster
    if spec.cluster == "none" and cluster is not None:
        raise CommandError(f"`{spec.id}` does not act on a cluster; drop `cluster`.")
    if spec.cluster == "required" and cluster is None:
        raise CommandError(f"`{spec.id}` acts on a cluster: give `cluster`.")
    if cluster is not None:
        try:
            cluster = validation.cluster_name(cluster)
        except validation.ArgValueError as exc:
            raise CommandError(str(exc), suggestions=list(exc.suggestions)) from None
    try:
        model = spec.args_model.model_validate(body.args, context={ALLOW_LOCAL_HOSTS: allow_local_hosts})
    except ValidationError as exc:
        names = ", ".join(spec.args_model.model_fields) or "none"
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'args'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise CommandError(f"Arguments of `{spec.id}` ({names}): {problems}.") from None
    return ParsedCommand(
        command=spec.id, cluster=cluster, args=model.model_dump(mode="json"), risk=spec.risk_for(model)
    )


def _as_text(body: CommandRequest) -> str:
    """A typed command as the audit trail, the approval card and the job record show it."""
    spec = COMMANDS[body.command or ""]
    words = [spec.aliases[0]]
    words += [f"{name}={_word(value)}" for name, value in body.args.items()]
    if body.cluster is not None:
        words += ["on", body.cluster]
    return " ".join(words)


def _word(value: Any) -> str:
    if isinstance(value, str) and value and not any(c.isspace() or c in "\"'" for c in value):
        return value
    return json.dumps(value, ensure_ascii=False)


def _pre_parse(text: str, *, allow_local_hosts: bool) -> ParsedCommand | None:
    """What the text names, when it parses on its own; the dispatcher parses it again (and answers any
    error, with the caller's sole cluster when it names none)."""
    # imported with the dispatcher, which `run_command` awaits first (`bot.dispatcher_soon`)
    from commands.parser import parse

    try:
        return parse(text, allow_local_hosts=allow_local_hosts)
    except CommandError:
        return None


def _refuse_conversation_commands(parsed: ParsedCommand | None) -> None:
    if parsed is not None and parsed.command in CONVERSATION_COMMANDS:
        raise CommandError(
            f"`{parsed.command}` is about the conversation it is typed in, and a REST call has none of "
            "its own; type it in the chat channel it is meant for."
        )


def _answer(outcome: CommandOutcome, said: list[OutgoingMessage]) -> JSONResponse:
    replies = [CommandReply(title=m.title, tone=m.tone.value, text=m.to_text()) for m in said]
    handled = outcome.handled
    if handled in (Handled.ANSWERED, Handled.QUEUED, Handled.AWAITING_APPROVAL):
        answer = CommandAnswer(
            outcome=handled,
            job_id=outcome.job_id,
            job_url=_job_url(outcome.job_id),
            approval=_approval(outcome.approval) if outcome.approval else None,
            replies=replies,
        )
        status = 200 if handled is Handled.ANSWERED else 202
        return JSONResponse(answer.model_dump(mode="json"), status_code=status)
    error = outcome.error
    if handled is Handled.REFUSED:
        # the dispatcher said why in its reply (the policy's reason, naming who can)
        detail = next((m.body for m in reversed(said) if m.body), "refused by the policy")
        status, suggestions = 403, []
    elif error is not None:
        detail = error.user_message
        status = next((code for kind, code in ERROR_STATUS if isinstance(error, kind)), 422)
        suggestions = error.suggestions if isinstance(error, CommandError) else []
    else:
        detail = "kobot failed to handle the command; the operators find it in the log under the reference"
        status, suggestions = 500, []
    problem = CommandProblem(
        outcome=handled, detail=detail, suggestions=suggestions, ref=outcome.ref, replies=replies
    )
    return JSONResponse(problem.model_dump(mode="json"), status_code=status)


def _approval(request: ApprovalRequest, *, job_id: str | None = None) -> ApprovalAnswer:
    return ApprovalAnswer(
        id=request.id,
        status=request.status.value,
        cluster=request.cluster,
        command=request.command_id,
        plan=list(request.plan_lines),
        approvals_required=request.approvals_required,
        approver_role=request.approver_role,
        expires_at=request.expires_at,
        approval_channels=list(request.approval_channels),
        job_id=job_id,
        job_url=_job_url(job_id),
    )


def _job_url(job_id: str | None) -> str | None:
    return f"{JOBS_PATH}/{job_id}" if job_id else None
