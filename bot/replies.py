"""What the dispatcher answers in chat when it does not run a command: notices, refusals and errors.

Only chat-safe text goes in: an error's `user_message`, never an exception's own text.
"""

from __future__ import annotations

from kobot.errors import CommandError, KobotError
from kobot.messages import MessageKind, OutgoingMessage, Tone

GENERIC_FAILURE = "Something went wrong on kobot's side; the operators can find it in the logs under {ref}."


def notice(title: str, body: str, tone: Tone) -> OutgoingMessage:
    """A short reply with a title and one line of body."""
    return OutgoingMessage(kind=MessageKind.REPLY, title=title, body=body, tone=tone)


def not_understood(exc: CommandError) -> OutgoingMessage:
    """A command that did not parse, with the commands kobot guesses were meant."""
    body = exc.user_message
    if exc.suggestions:
        body += "\nDid you mean: " + ", ".join(f"`{s}`" for s in exc.suggestions) + "?"
    return OutgoingMessage(
        kind=MessageKind.REPLY,
        title="I did not understand",
        body=body,
        tone=Tone.WARNING,
        footer="`help` lists what I can do",
    )


def cannot_do(exc: KobotError) -> OutgoingMessage:
    """An expected error, answered with its chat-safe message."""
    return notice("Cannot do that", exc.user_message, Tone.WARNING)


def failed_with_ref(ref: str) -> OutgoingMessage:
    """An unexpected error: only a reference the operators find in the log."""
    return notice("Error", GENERIC_FAILURE.format(ref=ref), Tone.DANGER)
