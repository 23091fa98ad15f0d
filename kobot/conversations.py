"""What crosses the adapter boundary inbound: who said what, where, and which button they clicked.

Raw platform payloads never leave their adapter; these typed events do.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from kobot.clock import utcnow


class Identity(BaseModel):
    """A user as a platform knows them. `user_id` is the stable key used for permissions and audit."""

    model_config = ConfigDict(frozen=True)

    platform: str
    user_id: str
    display_name: str = ""
    email: str | None = None

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.user_id}"

    def label(self) -> str:
        return self.display_name or self.user_id


class Conversation(BaseModel):
    """Where a message came from and where answers go: a channel/group/DM, optionally a thread."""

    model_config = ConfigDict(frozen=True)

    platform: str
    conversation_id: str
    thread_id: str | None = None
    is_direct: bool = False
    extra: dict[str, str] = Field(default_factory=dict)
    """Platform details an adapter needs to answer (e.g. a DingTalk session webhook). Never secrets."""

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.conversation_id}"


class MessageRef(BaseModel):
    """A message kobot sent, so it can be edited later. Persisted with the job it belongs to."""

    model_config = ConfigDict(frozen=True)

    platform: str
    conversation_id: str
    message_id: str
    thread_id: str | None = None
    extra: dict[str, str] = Field(default_factory=dict)


class InboundMessage(BaseModel):
    """A chat line addressed to kobot (mention prefix may still be in `text`; the parser drops it)."""

    model_config = ConfigDict(frozen=True)

    identity: Identity
    conversation: Conversation
    text: str
    message_id: str = ""
    received_at: datetime = Field(default_factory=utcnow)


class ButtonClick(BaseModel):
    """A button press. `value` is the button's payload exactly as kobot sent it (signed where it matters)."""

    model_config = ConfigDict(frozen=True)

    identity: Identity
    conversation: Conversation
    action_id: str
    value: str
    message: MessageRef | None = None
    received_at: datetime = Field(default_factory=utcnow)
