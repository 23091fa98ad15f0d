"""The capped exponential backoff every retry loop in kobot waits by.

Chat replies, job progress messages, alert delivery, DingTalk robot posts and stream reconnects all
retry what failed after a pause that doubles from a first delay up to a cap; this is the one place that
computes it, so they cannot drift apart.
"""

from __future__ import annotations

MAX_DOUBLINGS = 64
"""Doublings past this change nothing (any cap is reached long before) and would overflow a float."""


def capped_backoff(*, attempt: int, first: float, cap: float) -> float:
    """The pause after the `attempt`-th failure (1 for the first): `first`, doubled per failure, at most
    `cap`. Attempts below 1 wait `first`."""
    doublings = min(max(attempt - 1, 0), MAX_DOUBLINGS)
    return float(min(first * 2**doublings, cap))
