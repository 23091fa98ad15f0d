"""The bodies of `POST /api/v1/commands` and `GET /api/v1/approvals/{id}`, with the examples the
OpenAPI schema shows.

No `from __future__ import annotations` here: FastAPI reads these models' annotations at runtime.
"""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.command_outcome import Handled
from kobot import defaults


class CommandRequest(BaseModel):
    """Either `text`, as typed in chat, or `command` (a command id) with `cluster` and `args`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "scale workers 5 on prod"},
                {"command": "workers.scale", "cluster": "prod", "args": {"count": 5}},
            ]
        },
    )

    text: str | None = Field(
        default=None,
        min_length=1,
        max_length=defaults.TEXT_MAX_COMMAND_CHARS,
        description="The command as a person would type it in chat (English or 中文).",
    )
    command: str | None = Field(
        default=None, description="A command id, e.g. `workers.scale` (`help` in chat lists them)."
    )
    cluster: str | None = Field(default=None, description="The cluster a typed command acts on.")
    args: dict[str, Any] = Field(
        default_factory=dict, description="A typed command's arguments, by name, as its help lists them."
    )

    @model_validator(mode="after")
    def _one_form(self) -> "CommandRequest":
        if (self.text is None) == (self.command is None):
            raise ValueError("give either `text` (the command as typed in chat) or `command` (a command id)")
        if self.text is not None and (self.cluster is not None or self.args):
            raise ValueError("`cluster` and `args` go with `command`; with `text`, write them in the text")
        return self


REQUEST_EXAMPLES: dict[str, Any] = {
    "text": {
        "summary": "As typed in chat",
        "value": {"text": "scale workers 5 on prod"},
    },
    "chinese": {
        "summary": "The same in 中文",
        "value": {"text": "扩容 prod 工作节点 5"},
    },
    "typed": {
        "summary": "Typed: command id, cluster and arguments",
        "value": {"command": "workers.scale", "cluster": "prod", "args": {"count": 5}},
    },
}


class CommandReply(BaseModel):
    """One thing kobot said about the command, as it would have shown in chat."""

    title: str
    tone: str
    text: str = Field(description="The whole reply as plain text (title, body, fields, footer).")


class ApprovalAnswer(BaseModel):
    """The approval request a command waits for; approvers decide it in the cluster's approval channels."""

    id: str
    status: str
    cluster: str
    command: str
    plan: list[str]
    approvals_required: int
    approver_role: str
    expires_at: datetime
    approval_channels: list[str] = Field(
        description="Conversations whose approvers can decide it; empty: no channel takes this cluster's "
        "approval requests yet (`notify CLUSTER approvals here` in one), so none can."
    )
    job_id: str | None = Field(default=None, description="The job it runs as, once approved and queued.")
    job_url: str | None = None


class CommandAnswer(BaseModel):
    """A command that was run: answered at once (200), or queued or waiting for approval (202)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "outcome": "queued",
                    "job_id": "42",
                    "job_url": "/api/v1/jobs/42",
                    "approval": None,
                    "replies": [],
                }
            ]
        }
    )

    outcome: Handled
    job_id: str | None = Field(default=None, description="The queued job; follow it at `job_url`.")
    job_url: str | None = None
    approval: ApprovalAnswer | None = None
    replies: list[CommandReply] = Field(default_factory=list)


class CommandProblem(BaseModel):
    """A command that did not run, and why (the same words the chat would have shown)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "outcome": "not_understood",
                    "detail": "I don't know the command 'scael workers 5'. Say `help` for the list.",
                    "suggestions": ["scale workers"],
                    "replies": [],
                },
                {
                    "outcome": "refused",
                    "detail": "api:ci may not run workers.scale on prod; ask an admin of prod",
                    "suggestions": [],
                    "replies": [],
                },
            ]
        }
    )

    outcome: Handled
    detail: str
    suggestions: list[str] = Field(
        default_factory=list, description="Did you mean: commands that would work."
    )
    ref: str | None = Field(default=None, description="An unexpected failure's reference in kobot's log.")
    replies: list[CommandReply] = Field(default_factory=list)


def _problem(description: str) -> dict[str, Any]:
    return {"model": CommandProblem, "description": description}


RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": CommandAnswer, "description": "Queued (`job_id`) or waiting for approval (`approval`)."},
    403: _problem("Refused by the policy; `detail` says why and who can."),
    404: _problem("A cluster or job the command names does not exist."),
    409: _problem("The command cannot run in the current state of what it names."),
    422: _problem(
        "Not understood; `suggestions` holds what would work. A body that is neither form (or text over "
        "the length limit) gets FastAPI's validation error instead: `detail` is then a list naming the field."
    ),
    503: _problem("kobot's store is unavailable."),
}
