"""The command parser over 100,000 mutated lines: how many it understood or refused, and how fast.

The bounded form runs in `make test` (tests/fuzz/test_frames_and_parser_fuzz.py); here the full count.
Any exception other than a refusal (CommandError) stops the run: `make bench` prints it as failed.
"""

from __future__ import annotations

import random
import time

from tests.fuzz.test_frames_and_parser_fuzz import SEED, check_parser_lines, mutated_lines

LINES = 100_000
"""Mutated lines per run, as issue 11 asks of the parser."""


def run() -> dict[str, float]:
    lines = mutated_lines(random.Random(SEED), LINES)
    started = time.perf_counter()
    understood, refused = check_parser_lines(lines)
    seconds = time.perf_counter() - started
    return {
        "fuzz_parser_lines": float(len(lines)),
        "fuzz_parser_understood": float(understood),
        "fuzz_parser_refused": float(refused),
        "fuzz_parser_ms_per_line": round(seconds * 1000 / len(lines), 3),
    }


if __name__ == "__main__":
    print(run())
