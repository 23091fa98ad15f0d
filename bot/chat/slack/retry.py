"""Waiting out Slack's 429s inside the Web API client, for a bounded time.

slack-sdk's rate-limit handler retries a fixed number of times; a 60-second run of 429s with
`Retry-After: 1` would exhaust any small count and drop the message. This handler instead retries
while the call has been rate limited for less than a time budget, then lets the 429 through so the
adapter raises `DeliveryError(retry_after=...)` and the caller retries later.
"""

from __future__ import annotations

import time

from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.chat.slack import defaults

MAX_ATTEMPTS = 90
"""slack-sdk stops any call after 100 attempts whatever the handlers say; stay below that."""

_SINCE = "rate_limited_since"


def retry_after_seconds(headers: object) -> float | None:
    """The Retry-After header of a response (slack-sdk keeps header values as lists), if any."""
    if not hasattr(headers, "items"):
        return None
    for name, value in headers.items():
        if str(name).lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) else value
            try:
                return max(float(raw), 0.0)
            except (TypeError, ValueError):
                return None
    return None


class RateLimitBudgetRetryHandler(AsyncRateLimitErrorRetryHandler):
    """Retries 429 answers after their Retry-After until `budget_seconds` of rate limiting have passed."""

    def __init__(self, *, budget_seconds: float) -> None:
        super().__init__(max_retry_count=MAX_ATTEMPTS)
        self.budget_seconds = budget_seconds

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        if state.custom_values is None:
            state.custom_values = {}
        since = float(state.custom_values.setdefault(_SINCE, time.monotonic()))
        wait = retry_after_seconds(response.headers) or 1.0
        return time.monotonic() - since + wait <= self.budget_seconds


def retry_handlers(*, rate_limit_budget_seconds: float | None) -> list[AsyncRetryHandler]:
    """Handlers for a Web API client; without a budget 429s are not retried (lookups that must not stall)."""
    handlers: list[AsyncRetryHandler] = [
        AsyncConnectionErrorRetryHandler(max_retry_count=defaults.CONNECTION_RETRIES),
        AsyncServerErrorRetryHandler(
            max_retry_count=defaults.SERVER_ERROR_RETRIES,
            interval_calculator=BackoffRetryIntervalCalculator(
                backoff_factor=defaults.SERVER_ERROR_BACKOFF_SECONDS
            ),
        ),
    ]
    if rate_limit_budget_seconds is not None:
        handlers.append(RateLimitBudgetRetryHandler(budget_seconds=rate_limit_budget_seconds))
    return handlers
