"""`kobot serve` start: time and CPU until /healthz answers, and resident memory, beside a floor.

Target (issue: under load and faults): ready < 1 s, every start. The floor is this interpreter importing
FastAPI and uvicorn and serving one route, started the same way in the same run. Each figure is the median
of SERVE_START_RUNS starts, after one untimed start of each (it warms the page cache), and the slowest of
those starts' time to ready is reported beside it. Wall time to ready swings with the machine's load; the
CPU the process spent until ready does much less, so both are reported.

kobot's own bytecode is written first, as installing kobot writes it (pip compiles what it installs; the
container image holds it): the floor's FastAPI and uvicorn start from theirs. Without it every start
compiles kobot's few hundred modules from source, about 0.3 s here, and where PYTHONDONTWRITEBYTECODE is
set (as on the development machine) no start ever writes it.

`python -m tests.bench serve_start` runs this alone.
"""

from __future__ import annotations

import compileall
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.bench.figures import cpu_seconds, resident_mb

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("kobot", "bot", "commands", "workers", "alerts")
"""kobot's own packages, whose bytecode `run` writes before it starts anything."""
SERVE_START_RUNS = 5
"""Starts of each program per figure (the median is reported)."""
READY_WAIT_SECONDS = 60.0
"""Longest one start may take on a busy machine before it counts as not ready."""
POLL_SECONDS = 0.005
"""Pause between two polls of /healthz (each a refused connection until the server listens)."""
SETTLE_SECONDS = 0.5
"""Pause after ready before resident memory is read (the lifespan's first rounds have run)."""

FLOOR_SERVER = (
    "import sys, fastapi, uvicorn\n"
    "app = fastapi.FastAPI()\n"
    "app.get('/healthz')(lambda: {'status': 'ok'})\n"
    "uvicorn.run(app, host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')\n"
)
"""The floor of `kobot serve`'s start: this interpreter importing FastAPI and uvicorn, serving one route."""


def run() -> dict[str, float]:
    _write_bytecode()
    kobot = _starts(kobot_serve_command)
    floor = _starts(floor_command)
    with _every_core_busy():
        kobot_busy = _starts(kobot_serve_command)
        floor_busy = _starts(floor_command)
    return {
        "kobot serve time to ready s": kobot.ready,
        "kobot serve time to ready s__floor": floor.ready,
        "kobot serve slowest time to ready s": kobot.slowest_ready,
        "kobot serve slowest time to ready s__floor": floor.slowest_ready,
        "kobot serve slowest to ready, all cores busy s": kobot_busy.slowest_ready,
        "kobot serve slowest to ready, all cores busy s__floor": floor_busy.slowest_ready,
        "kobot serve CPU to ready s": kobot.cpu,
        "kobot serve CPU to ready s__floor": floor.cpu,
        "kobot serve resident memory MB": kobot.rss_mb,
        "kobot serve resident memory MB__floor": floor.rss_mb,
    }


def kobot_serve_command(port: int) -> list[str]:
    """`kobot serve` (its port comes from KOBOT_HTTP_PORT)."""
    del port
    return [sys.executable, "-m", "bot", "serve"]


def floor_command(port: int) -> list[str]:
    return [sys.executable, "-c", FLOOR_SERVER, str(port)]


SPINNER = (
    "import os, sys\n"
    "parent = int(sys.argv[1])\n"
    "while os.getppid() == parent:\n"
    "    for _ in range(100_000):\n"
    "        pass\n"
)
"""Keeps a core busy until its parent (the pid given) is gone: a bench killed before it could stop its
spinners (SIGTERM, SIGKILL) leaves none spinning. The pid comes from the parent, not from `getppid`: a
parent killed before the spinner asked would have made it spin for ever under its new parent."""


@contextmanager
def _every_core_busy() -> Iterator[list[int]]:
    """One process spinning per core this process may run on while the block runs (their pids are given):
    a host as busy as a test run or a neighbour makes it, where the target must hold too (the starts then
    share every core)."""
    spinners: list[subprocess.Popen[bytes]] = []
    try:
        for _ in os.sched_getaffinity(0):
            spinners.append(subprocess.Popen([sys.executable, "-c", SPINNER, str(os.getpid())]))
        yield [spinner.pid for spinner in spinners]
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def _write_bytecode(root: Path = REPO, packages: tuple[str, ...] = PACKAGES) -> None:
    """kobot's packages compiled as installing them would (`compileall` writes whatever the interpreter's
    PYTHONDONTWRITEBYTECODE says; an unchanged module is skipped)."""
    for package in packages:
        compileall.compile_dir(root / package, quiet=1)


@dataclass(frozen=True)
class Starts:
    """SERVE_START_RUNS starts of one program: the medians, and the slowest start (the target is every
    start under a second, not the median)."""

    ready: float
    slowest_ready: float
    cpu: float
    rss_mb: float


def _starts(command: Callable[[int], list[str]]) -> Starts:
    _start(command)
    starts = [_start(command) for _ in range(SERVE_START_RUNS)]
    return Starts(
        ready=statistics.median(s[0] for s in starts),
        slowest_ready=slowest([s[0] for s in starts]),
        cpu=statistics.median(s[1] for s in starts),
        rss_mb=statistics.median(s[2] for s in starts),
    )


def slowest(seconds: list[float]) -> float:
    """The longest of these times, NaN (a start that never answered) being longer than any: `max` returns
    whichever it met first when a NaN is among them."""
    return max(seconds, key=lambda s: math.inf if math.isnan(s) else s)


def _start(command: Callable[[int], list[str]]) -> tuple[float, float, float]:
    """Seconds from spawn to /healthz answering 200, the CPU seconds the process had used by then, and its
    resident MB a moment later (NaN each when it never became ready)."""
    # one client for every poll, made before the start: `httpx.get` builds a client, and its TLS context,
    # each time (about 40 ms of CPU a poll, taken from the 2 cores the process under test starts on)
    with (
        tempfile.TemporaryDirectory(prefix="ks-", dir="/tmp") as tmp,
        socket.socket() as probe,
        httpx.Client(timeout=0.5) as poller,
    ):
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KOBOT_")}
        env.update({"KOBOT_DATA_DIR": f"{tmp}/d", "KOBOT_HTTP_PORT": str(port), "KOBOT_LOG_LEVEL": "WARNING"})
        started = time.perf_counter()
        process = subprocess.Popen(
            command(port), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        nan = float("nan")
        ready, cpu, rss_mb = nan, nan, nan
        try:
            while time.perf_counter() - started < READY_WAIT_SECONDS and process.poll() is None:
                try:
                    if poller.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        ready = time.perf_counter() - started
                        cpu = cpu_seconds(process.pid)
                        break
                except httpx.HTTPError:
                    time.sleep(POLL_SECONDS)
            if ready == ready:
                time.sleep(SETTLE_SECONDS)
                rss_mb = resident_mb(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=20)
    return ready, cpu, rss_mb
