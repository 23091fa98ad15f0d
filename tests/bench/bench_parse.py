"""Parser figures on this machine: milliseconds per `parse` over the phrasings users type most.

Parsing sits on the ack path of every chat message, so its p99 must stay far below a platform's ack window.
"""

from __future__ import annotations

import contextlib
import time

from commands.catalog import load_commands
from commands.parser import parse
from kobot.errors import CommandError
from tests.bench.figures import percentile
from tests.commands.test_parser_examples import CASES

ROUNDS = 20
"""Passes over all examples; enough samples for a stable p99 in about a second."""

ERROR_TEXTS = ("creat cluster prod", "create cluster prod mastrs=3", "create cluster prod provider=vsphre")
"""Bad input takes the slower 'did you mean' path; measured separately."""


def _timed(texts: list[str], *, rounds: int = ROUNDS) -> list[float]:
    samples: list[float] = []
    for _ in range(rounds):
        for text in texts:
            start = time.perf_counter()
            with contextlib.suppress(CommandError):
                parse(text)
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def run() -> dict[str, float]:
    texts = [case[0] for case in CASES] + [e for spec in load_commands().values() for e in spec.examples]
    _timed(texts, rounds=1)  # warm-up: the alias index and each model's grammar are built once
    good = _timed(texts)
    bad = _timed(list(ERROR_TEXTS))
    return {
        "parse_p50_ms": round(percentile(good, 0.50), 3),
        "parse_p99_ms": round(percentile(good, 0.99), 3),
        "parse_error_p50_ms": round(percentile(bad, 0.50), 3),
        "parse_error_p99_ms": round(percentile(bad, 0.99), 3),
    }


if __name__ == "__main__":
    print(run())
