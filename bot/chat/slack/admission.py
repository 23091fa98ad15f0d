"""What a verified body must look like before Bolt parses it: UTF-8, one JSON object or form, Slack's shapes.

A signed body can still be malformed (a proxy re-encoding it, a bug on either side, a replayed
fuzz corpus). Bolt assumes Slack's shapes: it calls `.get` on `event`, indexes `authorizations[0]`
and decodes the body as UTF-8, and any surprise becomes an exception and an HTTP 500, which Slack
answers by retrying the same body. This check runs first and answers 400 with the reason instead.
What passes carries its parsed document, so an event the adapter takes itself is parsed once; only
what goes on to Bolt (slash commands, clicks, the URL check) is parsed again by Bolt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body

OBJECT_FIELDS = frozenset(
    {"event", "container", "message", "previous_message", "view", "item", "function_data", "state"}
)
"""Top-level fields that are objects whenever Slack sends them."""

OBJECT_OR_TEXT_FIELDS = frozenset({"team", "enterprise", "user", "channel"})
"""Top-level fields Slack sends as an object in interactions and as an id elsewhere."""

LIST_OF_OBJECT_FIELDS = frozenset({"authorizations", "actions", "response_urls"})
"""Top-level fields that are lists of objects."""

NEVER_NULL_FIELDS = OBJECT_FIELDS | LIST_OF_OBJECT_FIELDS | {"user", "channel"}
"""Fields Bolt reads with `.get(name, {})`, which a JSON null would break; Slack omits them instead."""

TEXT_FIELDS = frozenset(
    {"type", "event_id", "team_id", "api_app_id", "command", "text", "user_id", "channel_id", "trigger_id"}
)
"""Top-level fields that are strings whenever present."""

EVENT_TEXT_FIELDS = frozenset(
    {"type", "subtype", "user", "text", "ts", "thread_ts", "channel", "channel_type", "bot_id", "team"}
)
"""Fields of `event` that are strings whenever present (Bolt compares and matches on them)."""

EVENT_OBJECT_FIELDS = frozenset({"message", "previous_message", "item", "assistant_thread", "function"})
"""Fields of `event` that are objects whenever present."""

ACTION_TEXT_FIELDS = frozenset({"type", "action_id", "block_id", "value", "action_ts"})
"""Fields of each `actions` entry that are strings whenever present (Bolt matches ids by pattern)."""

NOT_A_PAYLOAD = "the body is not a Slack payload (a JSON object or a form)"


@dataclass(frozen=True)
class Admitted:
    """A verified body that has Slack's shapes: its text and the document parsed from it."""

    text: str
    document: dict[str, Any]
    headers: Mapping[str, str]

    def bolt_request(self) -> AsyncBoltRequest | Refused:
        """The request for Bolt, or why Bolt cannot take it."""
        try:
            return AsyncBoltRequest(body=self.text, headers=dict(self.headers))
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError):
            # Bolt's context building raised on a shape the checks in `admit` do not know yet
            return Refused(NOT_A_PAYLOAD)


@dataclass(frozen=True)
class Refused:
    """The body cannot be a Slack payload; `reason` is what the 400 answer says."""

    reason: str


def admit(body: bytes, *, headers: Mapping[str, str]) -> Admitted | Refused:
    """A verified body parsed once and checked for Slack's shapes, or why it is refused."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Refused("the body is not UTF-8")
    if text.startswith("\ufeff"):
        return Refused("the body starts with a byte-order mark; Slack sends none")
    problem = _form_problem(text, headers)
    if problem is not None:
        return Refused(problem)
    try:
        document = parse_body(text, headers.get("content-type"))
    except (ValueError, RecursionError):
        return Refused(NOT_A_PAYLOAD)
    problem = shape_problem(document)
    if problem is not None:
        return Refused(problem)
    return Admitted(text=text, document=document, headers=headers)


def _form_problem(text: str, headers: Mapping[str, str]) -> str | None:
    """Bolt reads a body as JSON when it is declared so or starts with `{`; anything else as a form."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or text.startswith("{"):
        return None if text.startswith("{") else "a JSON body must be one object"
    return None


def shape_problem(body: Any) -> str | None:
    """The first field whose type Slack never sends, named, or None when the shapes are Slack's."""
    if not isinstance(body, dict):
        return "the payload is not an object"
    for key, value in body.items():
        if value is None and key not in NEVER_NULL_FIELDS:
            continue
        problem = _field_problem(key, value)
        if problem is not None:
            return problem
    event = body.get("event")
    if isinstance(event, dict):
        for key in EVENT_TEXT_FIELDS:
            if event.get(key) is not None and not isinstance(event[key], str):
                return f"event.{key} must be a string"
        for key in EVENT_OBJECT_FIELDS:
            if event.get(key) is not None and not isinstance(event[key], dict):
                return f"event.{key} must be an object"
    actions = body.get("actions")
    if isinstance(actions, list):
        if not actions:
            return "actions must not be empty"
        for action in actions:
            for key in ACTION_TEXT_FIELDS:
                if action.get(key) is not None and not isinstance(action[key], str):
                    return f"actions[].{key} must be a string"
    return None


def _field_problem(key: str, value: Any) -> str | None:
    if key in OBJECT_FIELDS and not isinstance(value, dict):
        return f"{key} must be an object"
    if key in OBJECT_OR_TEXT_FIELDS and not isinstance(value, dict | str):
        return f"{key} must be an object or a string"
    if key in LIST_OF_OBJECT_FIELDS and not (
        isinstance(value, list) and all(isinstance(item, dict) for item in value)
    ):
        return f"{key} must be a list of objects"
    if key in TEXT_FIELDS and not isinstance(value, str):
        return f"{key} must be a string"
    return None
