"""Route regular expressions on RE2, a linear-time engine: no label value can make a match backtrack.

Python's `re` backtracks, so `(a+)+b` against a long label held the event loop for seconds. RE2 (what
Alertmanager itself uses for `match_re`) matches in time linear in the input, so matching stays on the
loop; patterns RE2 cannot run (backreferences, lookaround) are refused when settings load.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Protocol

ROUTE_REGEX_MAX_MEMORY_BYTES = 8 * 1024 * 1024
"""Memory RE2 may use to compile and run one route pattern (its own default); a bigger one is refused."""

ROUTE_REGEX_MAX_CHARS = 1024
"""Longest `match_re` pattern a route may use; real label patterns are a few dozen characters."""


class PatternError(ValueError):
    """The pattern is not one kobot will match with (too long, or not RE2 syntax)."""


class Pattern(Protocol):
    def fullmatch(self, text: str) -> object | None: ...


def _re2() -> Any:
    """RE2's module, imported by the first pattern compiled: when the settings hold one, as they are
    loaded; a kobot with no `match_re` route never needs it."""
    import re2  # type: ignore[import-untyped]

    return re2


def _options() -> object:
    options = _re2().Options()
    options.log_errors = False  # a refused pattern is reported by the settings error, not on stderr
    options.max_mem = ROUTE_REGEX_MAX_MEMORY_BYTES
    return options


def compile_pattern(pattern: str) -> Pattern:
    """A compiled RE2 pattern; PatternError names the problem."""
    if len(pattern) > ROUTE_REGEX_MAX_CHARS:
        raise PatternError(f"{len(pattern)} characters; at most {ROUTE_REGEX_MAX_CHARS}")
    re2 = _re2()
    try:
        compiled: Pattern = re2.compile(pattern, _options())
    except re2.error as exc:
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise PatternError(f"not RE2 syntax: {detail}") from None
    return compiled


@lru_cache(maxsize=512)
def cached_pattern(pattern: str) -> Pattern:
    """`compile_pattern`, once per distinct pattern (routes are matched for every alert)."""
    return compile_pattern(pattern)
