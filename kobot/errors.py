"""One exception tree: every KobotError carries a message that is safe to show in chat."""

from __future__ import annotations


class KobotError(Exception):
    """Base of every error kobot expects. `user_message` never holds a secret."""

    def __init__(self, user_message: str, *, detail: str | None = None) -> None:
        super().__init__(detail or user_message)
        self.user_message = user_message


class SettingsError(KobotError):
    """The settings cannot start kobot; the message names the setting."""


class StoreUnavailableError(KobotError):
    """Redis/Valkey did not answer."""


class CommandError(KobotError):
    """The chat text is not a valid command. Suggestions are shown as 'did you mean'."""

    def __init__(self, user_message: str, *, suggestions: list[str] | None = None) -> None:
        super().__init__(user_message)
        self.suggestions = suggestions or []


class PermissionDeniedError(KobotError):
    """The user may not run this command on this cluster."""


class NotFoundError(KobotError):
    """A cluster, job, approval or backup named in a command does not exist."""


class ConflictError(KobotError):
    """The command cannot run in the current state (job already finished, cluster busy...)."""


class JobCancelledError(KobotError):
    """Raised inside a step when the job's cancel flag was set."""


class StepFailedError(KobotError):
    """A step of an operation failed; the message says which task, host and why."""

    def __init__(
        self,
        user_message: str,
        *,
        task: str | None = None,
        host: str | None = None,
        error: str | None = None,
    ) -> None:
        super().__init__(user_message)
        self.task = task
        self.host = host
        self.error = error


class DeliveryError(KobotError):
    """A chat platform did not take a message; the notifier retries it."""

    def __init__(self, user_message: str, *, retry_after: float | None = None) -> None:
        super().__init__(user_message)
        self.retry_after = retry_after
