"""The alias index's shortcuts give the answers of the plain way, only faster.

A line is matched only against the aliases that can start with its first word, and 'did you mean' scores
only the phrases whose length and letters can reach the cutoff. Both are checked here against the plain
way (every alias in order; difflib on every phrase) over typed and mutated lines.
"""

from __future__ import annotations

import difflib
import random
import time

import pytest

from commands.catalog import load_commands
from commands.grammar import SUGGESTIONS_MAX, AliasIndex, Token, alias_index, normalize_text, tokenize
from commands.parser import parse
from kobot import defaults
from kobot.errors import CommandError
from tests.fuzz.test_frames_and_parser_fuzz import COMMAND_LINES, SEED, mutated_lines

LINES = 1_500
SUGGESTED_LINES = 60
"""Unknown lines whose suggestions are compared (the plain way takes ~30 ms each)."""
WHOAMI_PARSES = 200
WHOAMI_BUDGET_SECONDS = 2.0
"""200 parses of `whoami` took ~0.5 s before the index (2.5 ms each on a busy machine), ~0.03 s after."""


def _lines() -> list[list[Token]]:
    texts = [
        *COMMAND_LINES,
        "whoami",
        "安装监控 prod",
        "查看 prod 节点",
        "备份prod",
        *mutated_lines(random.Random(SEED + 7), LINES),
    ]
    found = []
    for text in texts:
        try:
            tokens = tokenize(normalize_text(text))
        except ValueError:
            continue
        if tokens:
            found.append(tokens)
    return found


def _plain_suggest(index: AliasIndex, tokens: list[Token]) -> list[str]:
    """`suggest` as it was: difflib over every phrase."""
    words = [t.text.lower() for t in tokens]
    scored: dict[str, float] = {}
    for phrase in index.phrases:
        size = len(phrase.split())
        matcher = difflib.SequenceMatcher(None, " ".join(words[:size]), phrase)
        if matcher.real_quick_ratio() < defaults.SUGGESTION_CUTOFF:
            continue
        ratio = matcher.ratio()
        if ratio >= defaults.SUGGESTION_CUTOFF:
            line = " ".join([phrase, *(t.text for t in tokens[size:])])
            scored[line] = max(ratio, scored.get(line, 0.0))
    return [line for line, _ in sorted(scored.items(), key=lambda kv: -kv[1])][:SUGGESTIONS_MAX]


@pytest.fixture(scope="module")
def index() -> AliasIndex:
    return alias_index(load_commands())


def test_matching_by_first_word_finds_what_every_alias_in_order_finds(
    index: AliasIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _lines()
    fast = [index.match(tokens) for tokens in lines]
    monkeypatch.setattr(index, "_candidates", lambda first: index.entries)
    plain = [index.match(tokens) for tokens in lines]
    assert fast == plain
    assert sum(m is not None for m in fast) > len(lines) // 10


def test_suggestions_are_the_plain_difflib_ones(index: AliasIndex) -> None:
    lines = [tokens for tokens in _lines() if index.match(tokens) is None][:SUGGESTED_LINES]
    assert len(lines) == SUGGESTED_LINES
    suggested = 0
    for tokens in lines:
        expected = _plain_suggest(index, tokens)
        assert index.suggest(tokens) == expected, [t.text for t in tokens]
        suggested += bool(expected)
    assert suggested > 5


def test_whoami_parses_without_walking_every_alias() -> None:
    parse("whoami")
    started = time.perf_counter()
    for _ in range(WHOAMI_PARSES):
        parse("whoami")
    assert time.perf_counter() - started < WHOAMI_BUDGET_SECONDS


def test_a_mistyped_command_still_gets_its_correction() -> None:
    with pytest.raises(CommandError) as refused:
        parse("lst clusters")
    assert "list clusters" in refused.value.suggestions
