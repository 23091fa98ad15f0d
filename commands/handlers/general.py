"""Handlers of the commands about kobot itself and its records: `help` (what you may run here), `whoami`
(identity, person, groups, roles) and `audit` (the trail, in chat, for admins).

The dispatcher has already authorized the command; `audit` without a cluster still shows only entries
of clusters the user may audit, since a role can be bound to some clusters only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from commands.context import CommandContext, CommandResult, Reply
from commands.definitions.general import AuditArgs, ChannelBindArgs, ChannelUnbindArgs, HelpArgs, WhoamiArgs
from commands.help import render_help
from commands.registry import COMMANDS, CommandSpec, handles
from kobot.access import WhoAmI
from kobot.audit import parse_since
from kobot.channel_bindings import ChannelBindings
from kobot.clock import utcnow
from kobot.errors import CommandError, KobotError, PermissionDeniedError
from kobot.messages import Field, MessageKind, OutgoingMessage, Tone
from kobot.risk import Risk

AUDIT_CHAT_LINES = 20
"""Entries one `audit` reply shows: enough to answer "who did that", short enough for any platform."""

AUDIT_CHAT_SCAN = 500
"""Entries read to find those lines when some belong to clusters the user may not audit."""

AUDIT_COMMAND = "audit"


@handles(HelpArgs)
async def show_help(ctx: CommandContext, args: HelpArgs) -> CommandResult:
    allowed = ctx.runtime.policy.allowed_commands(
        identity=ctx.identity, conversation=ctx.conversation, cluster=ctx.parsed.cluster
    )

    def may_run(spec: CommandSpec[Any]) -> bool:
        return spec.id in allowed

    return Reply(render_help(args.topic, allowed=may_run))


@handles(WhoamiArgs)
async def whoami(ctx: CommandContext, args: WhoamiArgs) -> CommandResult:
    policy = ctx.runtime.policy
    cluster = ctx.parsed.cluster or policy.default_cluster(conversation=ctx.conversation)
    who = policy.describe(identity=ctx.identity, conversation=ctx.conversation, cluster=cluster)
    allowed = policy.allowed_commands(identity=ctx.identity, conversation=ctx.conversation, cluster=cluster)
    return Reply(render_whoami(who, allowed_count=len(allowed), total=len(COMMANDS)))


def render_whoami(who: WhoAmI, *, allowed_count: int, total: int) -> OutgoingMessage:
    where = f"on {who.cluster}" if who.cluster else "(no cluster named)"
    fields = [Field(label="Identity", value=who.identity), Field(label="Person", value=who.person or "—")]
    others = [key for key in who.identities if key.lower() != who.identity.lower()]
    if others:
        fields.append(Field(label="Also", value=", ".join(others)))
    fields += [
        Field(label="Groups", value=", ".join(who.groups) or "—"),
        Field(label=f"Roles {where}", value=", ".join(who.roles) or "none"),
        Field(label="Policy", value=who.policy_source),
    ]
    footer = None
    if who.directory_error:
        footer = f"Directory groups may be missing: {who.directory_error}"
    return OutgoingMessage(
        kind=MessageKind.REPLY,
        title=f"You are {who.display_name}",
        tone=Tone.WARNING if who.directory_error else Tone.INFO,
        status=f"You may run {allowed_count} of {total} commands here; `help` lists them.",
        fields=tuple(fields),
        footer=footer,
    )


@handles(AuditArgs)
async def audit(ctx: CommandContext, args: AuditArgs) -> CommandResult:
    runtime = ctx.runtime
    cluster = ctx.parsed.cluster
    since_text = args.since
    since: datetime | None = None
    if since_text:
        try:
            since = parse_since(since_text, now=utcnow())
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    permitted: dict[str | None, bool] = {}

    def may_audit(entry_cluster: str | None) -> bool:
        if entry_cluster not in permitted:
            permitted[entry_cluster] = runtime.policy.can_run(
                identity=ctx.identity,
                conversation=ctx.conversation,
                command_id=AUDIT_COMMAND,
                risk=Risk.READ,
                cluster=entry_cluster,
            )
        return permitted[entry_cluster]

    entries = [
        entry
        for entry in runtime.audit.query(cluster=cluster, since=since, limit=AUDIT_CHAT_SCAN)
        if may_audit(entry.cluster)
    ][:AUDIT_CHAT_LINES]
    scope = f" on {cluster}" if cluster else ""
    span = f" since {since_text}" if since_text else ""
    if not entries:
        return Reply(
            OutgoingMessage(kind=MessageKind.REPLY, title=f"Audit{scope}{span}", body="Nothing recorded.")
        )
    return Reply(
        OutgoingMessage(
            kind=MessageKind.REPLY,
            title=f"Audit{scope}{span}",
            status=f"newest {len(entries)} entries first",
            code="\n".join(entry.line() for entry in entries),
            footer="Everything: GET /api/v1/audit?format=jsonl with an API token.",
        )
    )


@handles(ChannelBindArgs)
async def bind_channel(ctx: CommandContext, args: ChannelBindArgs) -> CommandResult:
    """The dispatcher checked the right to change the named cluster; the cluster must exist."""
    cluster = ctx.runtime.clusters.require(ctx.cluster()).name
    previous = ChannelBindings(ctx.runtime.redis).bind(ctx.conversation.key, cluster)
    before = f" (it was bound to {previous})" if previous not in (None, cluster) else ""
    return Reply(
        OutgoingMessage(
            kind=MessageKind.REPLY,
            title=f"This channel now uses {cluster}",
            body=f"Commands here act on {cluster} unless they name another cluster{before}. "
            "`unbind` removes the binding.",
            tone=Tone.SUCCESS,
        )
    )


@handles(ChannelUnbindArgs)
async def unbind_channel(ctx: CommandContext, args: ChannelUnbindArgs) -> CommandResult:
    """Unbinding needs the right to change the bound cluster, as binding it did."""
    bindings = ChannelBindings(ctx.runtime.redis)
    bound = bindings.get(ctx.conversation.key)
    if bound is None:
        raise KobotError("this channel has no binding made in chat (a policy file binding is changed there)")
    allowed = ctx.runtime.policy.can_run(
        identity=ctx.identity,
        conversation=ctx.conversation,
        command_id=ctx.parsed.command,
        risk=Risk.CHANGE,
        cluster=bound,
    )
    if not allowed:
        raise PermissionDeniedError(
            f"unbinding needs the right to change {bound}, which you do not have here"
        )
    bindings.unbind(ctx.conversation.key)
    after = ctx.runtime.policy.default_cluster(conversation=ctx.conversation)
    fallback = f"the policy file binds it to {after}" if after else "commands here name their cluster again"
    return Reply(
        OutgoingMessage(
            kind=MessageKind.REPLY,
            title=f"This channel no longer uses {bound}",
            body=f"{fallback}.",
            tone=Tone.SUCCESS,
        )
    )
