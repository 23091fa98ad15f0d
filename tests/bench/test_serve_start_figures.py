"""The serve-start bench's own measures: CPU read from /proc, and a start that never answers is no figure."""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import time
import tomllib
from pathlib import Path

from tests.bench.bench_serve_start import PACKAGES, _every_core_busy, _start, _write_bytecode, slowest
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


def test_a_start_that_never_answered_is_the_slowest_whatever_its_place() -> None:
    assert math.isnan(slowest([0.4, math.nan, 0.5]))
    assert math.isnan(slowest([math.nan, 0.4]))
    assert slowest([0.4, 0.7, 0.5]) == 0.7


def test_the_bytecode_of_each_package_is_written_before_the_starts(tmp_path: Path) -> None:
    """The starts measure kobot as installed, from bytecode, even where Python writes none itself (shown
    on packages of this test's own, so the suite writes nothing into the source tree)."""
    modules = [tmp_path / "one" / "__init__.py", tmp_path / "two" / "deep" / "module.py"]
    for module in modules:
        module.parent.mkdir(parents=True)
        module.write_text("VALUE = 1\n")
    _write_bytecode(tmp_path, ("one", "two"))
    for module in modules:
        assert Path(importlib.util.cache_from_source(str(module))).is_file()
    # and the packages compiled are kobot's own, all of them
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert set(PACKAGES) == set(project["tool"]["importlinter"]["root_packages"])


def test_every_core_is_kept_busy_while_the_block_runs_and_freed_after_it() -> None:
    with _every_core_busy() as spinners:
        assert len(spinners) == os.cpu_count()
        time.sleep(BURN_SECONDS)
        assert all(cpu_seconds(pid) >= BURN_SECONDS / 4 for pid in spinners)
    assert not any(Path(f"/proc/{pid}").exists() for pid in spinners)
