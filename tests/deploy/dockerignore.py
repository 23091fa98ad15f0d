"""`.dockerignore` matching as Docker's builder does it (moby/patternmatcher).

Patterns are read in order and the last one that matches decides; `!` re-includes. A pattern matches a
path when it matches the path itself or one of its parent directories (`.git` keeps `.git/HEAD` out).
`*` and `?` stay within one path element, `**` spans any number of them; a leading `/` is dropped.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    text: str
    regex: re.Pattern[str]
    include: bool
    """True for a `!` pattern: a path it matches is sent to the builder."""


def _to_regex(pattern: str) -> re.Pattern[str]:
    out = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.index("]", index)
            out.append(pattern[index : end + 1].replace("[!", "[^"))
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out) + r"\Z")


def read_patterns(text: str) -> list[Pattern]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        cleaned = posixpath.normpath(line.removeprefix("!").strip()).lstrip("/")
        patterns.append(Pattern(text=line, regex=_to_regex(cleaned), include=include))
    return patterns


def excluded(patterns: list[Pattern], path: str) -> bool:
    """Whether the builder leaves `path` (relative, `/`-separated) out of the context."""
    parts = path.split("/")
    candidates = ["/".join(parts[: length + 1]) for length in range(len(parts))]
    result = False
    for pattern in patterns:
        if any(pattern.regex.match(candidate) for candidate in candidates):
            result = not pattern.include
    return result
