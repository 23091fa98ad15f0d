"""What crosses the adapter boundary inbound: who said what, where, and which button they clicked.

Raw platform payloads never leave their adapter; these typed events do, and never with a lone
surrogate in any string (a `\\udfff` JSON escape decodes to one): it is dropped as the model is
built, so no key, store write or JSON dump of a record made from it can fail on text UTF-8 cannot hold.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from kobot.clock import utcnow
from kobot.deferred_models import DeferredModel
from kobot.validation import scrub_surrogates


class ChatModel(DeferredModel):
    """A frozen model of chat data whose strings (in dicts and lists too) hold no lone surrogate."""

    model_config = ConfigDict(frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _without_surrogates(cls, value: Any) -> Any:
        return scrub_surrogates(value) if isinstance(value, str | dict | list) else value


class Identity(ChatModel):
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


class Conversation(ChatModel):
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


class MessageRef(ChatModel):
    """A message kobot sent, so it can be edited later. Persisted with the job it belongs to."""

    model_config = ConfigDict(frozen=True)

    platform: str
    conversation_id: str
    message_id: str
    thread_id: str | None = None
    extra: dict[str, str] = Field(default_factory=dict)


class InboundMessage(ChatModel):
    """A chat line addressed to kobot (mention prefix may still be in `text`; the parser drops it)."""

    model_config = ConfigDict(frozen=True)

    identity: Identity
    conversation: Conversation
    text: str
    message_id: str = ""
    received_at: datetime = Field(default_factory=utcnow)


class ButtonClick(ChatModel):
    """A button press. `value` is the button's payload exactly as kobot sent it (signed where it matters)."""

    model_config = ConfigDict(frozen=True)

    identity: Identity
    conversation: Conversation
    action_id: str
    value: str
    message: MessageRef | None = None
    received_at: datetime = Field(default_factory=utcnow)
