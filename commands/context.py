"""What a command handler gets, and what it may answer: a reply now, or a job to queue."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from redis import Redis

from commands.parsed import ParsedCommand
from kobot.access import WhoAmI
from kobot.audit import AuditLog
from kobot.clusters import ClusterStore
from kobot.conversations import Conversation, Identity
from kobot.errors import KobotError
from kobot.messages import Field, MessageKind, OutgoingMessage, Tone
from kobot.risk import Risk
from kobot.settings import Settings
from workers.service import JobService


class PolicyReader(Protocol):
    """What handlers ask the policy (bot.policy.PolicyStore answers): they read it, they never decide
    whether their own command may run; the dispatcher did that before calling them."""

    def can_run(
        self,
        *,
        identity: Identity,
        conversation: Conversation,
        command_id: str,
        risk: Risk,
        cluster: str | None,
    ) -> bool: ...

    def allowed_commands(
        self, *, identity: Identity, conversation: Conversation, cluster: str | None
    ) -> frozenset[str]: ...

    def default_cluster(self, *, conversation: Conversation) -> str | None: ...

    def describe(self, *, identity: Identity, conversation: Conversation, cluster: str | None) -> WhoAmI: ...


class CommandServices(Protocol):
    """The parts of the running kobot a handler may read: settings, store, jobs, clusters, policy, audit.

    bot.runtime.Runtime provides them; handlers see only this, so commands never import the bot above."""

    @property
    def settings(self) -> Settings: ...
    @property
    def redis(self) -> Redis: ...
    @property
    def jobs(self) -> JobService: ...
    @property
    def clusters(self) -> ClusterStore: ...
    @property
    def policy(self) -> PolicyReader: ...
    @property
    def audit(self) -> AuditLog: ...


@dataclass(frozen=True)
class CommandContext:
    """Who asked, where, and the services to read state from. Handlers never write to chat themselves."""

    runtime: CommandServices
    identity: Identity
    conversation: Conversation
    parsed: ParsedCommand
    text: str

    def cluster(self) -> str:
        """The cluster the command names; a command that needs one and names none is answered so."""
        if self.parsed.cluster is None:
            raise KobotError("which cluster? add `on NAME`")
        return self.parsed.cluster


@dataclass(frozen=True)
class Reply:
    """Answer at once with this message."""

    message: OutgoingMessage


def reply(
    title: str, *, body: str | None = None, fields: tuple[Field, ...] = (), tone: Tone = Tone.INFO
) -> Reply:
    """A reply message with this title: what most commands that read state answer with."""
    return Reply(OutgoingMessage(kind=MessageKind.REPLY, title=title, body=body, fields=fields, tone=tone))


@dataclass(frozen=True)
class SubmitJob:
    """Queue a job. `plan_lines` and `plan_hash` say exactly what will run; approvals bind to the hash."""

    kind: str
    cluster: str
    params: dict[str, Any]
    title: str
    plan_lines: tuple[str, ...] = ()
    plan_hash: str = ""
    extra_fields: dict[str, str] = field(default_factory=dict)


CommandResult = Reply | SubmitJob
