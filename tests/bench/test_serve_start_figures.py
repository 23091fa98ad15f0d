"""The serve-start bench's own measures: CPU read from /proc, and a start that never answers is no figure."""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import time
from pathlib import Path

from tests.bench.bench_serve_start import PACKAGES, REPO, _start, _write_bytecode
from tests.bench.figures import cpu_seconds

BURN_SECONDS = 0.2
"""CPU this test spends so the reading has something to see (a clock tick is 10 ms)."""


def test_cpu_seconds_counts_the_cpu_a_process_spent() -> None:
    before = cpu_seconds(os.getpid())
    started = time.process_time()
    while time.process_time() - started < BURN_SECONDS:
        pass
    spent = cpu_seconds(os.getpid()) - before
    assert BURN_SECONDS * 0.75 <= spent <= BURN_SECONDS + 0.1


def test_a_program_that_never_answers_gives_no_figure() -> None:
    ready, cpu, rss_mb = _start(lambda port: [sys.executable, "-c", "pass"])
    assert math.isnan(ready) and math.isnan(cpu) and math.isnan(rss_mb)


def test_kobots_bytecode_is_written_before_the_starts() -> None:
    """The starts measure kobot as installed, from bytecode, even where Python writes none itself."""
    cached = Path(importlib.util.cache_from_source(str(REPO / "kobot" / "defaults.py")))
    cached.unlink(missing_ok=True)
    _write_bytecode()
    assert cached.is_file()
    for package in PACKAGES:
        assert Path(importlib.util.cache_from_source(str(REPO / package / "__init__.py"))).is_file()
