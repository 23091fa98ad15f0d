"""A clock a test can move forward, for peers whose platform counts time (expiry, throttles, deadlines).

The peer reads `now()` wherever the platform would look at its own clock; a test calls `advance()`
to be 90 seconds or 10 minutes later at once instead of sleeping. Real time still flows underneath,
so short windows (a one-second budget) keep working without any call to `advance()`.
"""

from __future__ import annotations

import threading
import time


class PeerClock:
    """Monotonic seconds plus an offset the test controls; `wall_ms()` is the matching epoch time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0

    def now(self) -> float:
        with self._lock:
            return time.monotonic() + self._offset

    def wall_ms(self) -> int:
        with self._lock:
            return int((time.time() + self._offset) * 1000)

    def advance(self, seconds: float) -> None:
        """Jump `seconds` ahead (never back: a platform's clock does not run backwards)."""
        if seconds < 0:
            raise ValueError(f"a peer clock only moves forward; got {seconds}")
        with self._lock:
            self._offset += seconds
