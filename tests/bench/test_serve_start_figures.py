"""The serve-start bench's own measures: CPU read from /proc, and a start that never answers is no figure."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from tests.bench.bench_serve_start import PACKAGES, _every_core_busy, _start, _write_bytecode, slowest
from tests.bench.figures import cpu_seconds

BURN_SECONDS = 0.2
"""CPU this test spends so the reading has something to see (a clock tick is 10 ms)."""
SPIN_WAIT_SECONDS = 30.0
"""Longest a spinner may take to be seen spinning, or gone, on a loaded machine."""


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
        assert len(spinners) == len(os.sched_getaffinity(0))
        # each spins: on a loaded machine it may take a while to get its share
        deadline = time.monotonic() + SPIN_WAIT_SECONDS
        while time.monotonic() < deadline and not all(cpu_seconds(pid) >= BURN_SECONDS for pid in spinners):
            time.sleep(0.05)
        assert all(cpu_seconds(pid) >= BURN_SECONDS for pid in spinners)
    assert not any(Path(f"/proc/{pid}").exists() for pid in spinners)


def test_a_spinner_stops_when_the_bench_that_started_it_is_killed(tmp_path: Path) -> None:
    """A bench killed (SIGKILL: no `finally` runs) must not leave cores spinning for ever."""
    pids = tmp_path / "pids"
    bench = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from tests.bench.bench_serve_start import _every_core_busy\n"
            "with _every_core_busy() as spinners:\n"
            "    open(sys.argv[1], 'w').write(' '.join(map(str, spinners)))\n"
            "    time.sleep(60)\n",
            str(pids),
        ],
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        deadline = time.monotonic() + SPIN_WAIT_SECONDS
        while not (pids.exists() and pids.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        spinners = [int(pid) for pid in pids.read_text().split()]
        assert spinners
    finally:
        bench.kill()
        bench.wait()
    deadline = time.monotonic() + SPIN_WAIT_SECONDS
    while time.monotonic() < deadline and any(_running(pid) for pid in spinners):
        time.sleep(0.05)
    assert not any(_running(pid) for pid in spinners)


def _running(pid: int) -> bool:
    """Whether `pid` is a process that has not ended (an ended child of init is reaped at once; a zombie
    counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
