"""Turns ansible-runner's raw event dicts into kobot `JobEvent`s, masked, and remembers the first failure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kobot.job_records import JobEvent, JobEventType
from workers.masking import Masker

EVENT_MESSAGE_MAX_CHARS = 500
"""A task message in chat is a hint, not a log: longer output is cut (the artifacts keep it, masked)."""

ERROR_OUTPUT_LINES = 5
"""Lines of a failed command's stderr/stdout appended to its error message."""

_RUNNER_EVENTS = {
    "playbook_on_task_start": JobEventType.TASK_STARTED,
    "runner_on_failed": JobEventType.TASK_FAILED,
    "runner_on_skipped": JobEventType.TASK_SKIPPED,
    "runner_on_unreachable": JobEventType.HOST_UNREACHABLE,
}


def shorten(text: str, *, limit: int = EVENT_MESSAGE_MAX_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tail(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        return ""
    return "\n".join(value.strip().splitlines()[-ERROR_OUTPUT_LINES:])


def describe_failure(res: dict[str, Any]) -> str:
    """One readable error from a module result: its msg, then the end of stderr (or stdout)."""
    parts: list[str] = []
    msg = res.get("msg")
    if isinstance(msg, str) and msg.strip():
        parts.append(msg.strip())
    elif msg is not None:
        parts.append(str(msg))
    output = _tail(res.get("stderr")) or _tail(res.get("stdout"))
    if output and output not in parts:
        parts.append(output)
    if res.get("results") and not parts:
        # A loop: the first failed item tells why.
        for item in res["results"]:
            if isinstance(item, dict) and item.get("failed"):
                return describe_failure(item)
    return "\n".join(parts) or "task failed"


class EventTranslator:
    """Stateful per run: translates events and keeps the first real failure for the result."""

    def __init__(self, *, job_id: str, step: str, masker: Masker, emit: Callable[[JobEvent], None]) -> None:
        self._job_id = job_id
        self._step = step
        self._masker = masker
        self._emit = emit
        self.failed_task: str | None = None
        self.failed_host: str | None = None
        self.error: str | None = None

    def handle(self, raw: dict[str, Any]) -> None:
        name = raw.get("event")
        data = raw.get("event_data") or {}
        if not isinstance(name, str) or not isinstance(data, dict):
            return
        event_type = self._classify(name, data)
        if event_type is None:
            return
        res = data.get("res") if isinstance(data.get("res"), dict) else {}
        assert isinstance(res, dict)
        message: str | None = None
        if event_type in (JobEventType.TASK_FAILED, JobEventType.HOST_UNREACHABLE):
            message = self._masker.mask(shorten(describe_failure(res)))
            if self.failed_task is None:
                self.failed_task = self._masker.mask_optional(self._text(data.get("task")))
                self.failed_host = self._masker.mask_optional(self._text(data.get("host")))
                self.error = message
        elif isinstance(res.get("msg"), str) and res["msg"].strip():
            message = self._masker.mask(shorten(res["msg"]))
        extra: dict[str, Any] = {}
        action = data.get("resolved_action") or data.get("task_action")
        if isinstance(action, str):
            extra["action"] = action
        self._emit(
            JobEvent(
                job_id=self._job_id,
                type=event_type,
                step=self._step,
                task=self._masker.mask_optional(self._text(data.get("task"))),
                host=self._masker.mask_optional(self._text(data.get("host"))),
                message=message,
                data=extra,
            )
        )

    @staticmethod
    def _text(value: Any) -> str | None:
        return value if isinstance(value, str) and value else None

    @staticmethod
    def _classify(name: str, data: dict[str, Any]) -> JobEventType | None:
        if name == "runner_on_ok":
            res = data.get("res")
            changed = isinstance(res, dict) and bool(res.get("changed"))
            return JobEventType.TASK_CHANGED if changed else JobEventType.TASK_OK
        if name == "runner_on_failed" and data.get("ignore_errors"):
            return None
        return _RUNNER_EVENTS.get(name)
