"""`make bench`: run every tests/bench/bench_*.py `run()` and print its figures for this machine.

Figures, not verdicts: nothing here fails on time. Each run is also appended to
.kobot-bench/history.jsonl so a change to a hot path can be compared with the previous figure.

A figure `X` that comes with `X__floor` (the same thing measured on the same machine in the same run
for the least a program can do, e.g. a bare aiohttp bot) is printed with that floor and the ratio:
on a shared, busy machine the ratio holds where the absolute figure does not.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
HISTORY = HERE.parents[1] / ".kobot-bench" / "history.jsonl"
FLOOR_SUFFIX = "__floor"


def main(selected: list[str]) -> int:
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if selected:
        names = [n for n in names if any(s in n for s in selected)]
    previous = _previous()
    results: dict[str, dict[str, float]] = {}
    print(
        f"kobot benchmarks · {platform.node()} · {os.cpu_count()} cores · python {platform.python_version()}"
    )
    for name in names:
        started = time.monotonic()
        try:
            figures = importlib.import_module(f"tests.bench.{name}").run()
        except Exception:
            print(f"\n{name}: FAILED TO RUN\n{traceback.format_exc()}")
            continue
        results[name] = figures
        print(f"\n{name} ({time.monotonic() - started:.1f}s)")
        for key, value in figures.items():
            if key.endswith(FLOOR_SUFFIX):
                continue
            before = previous.get(name, {}).get(key)
            delta = f"   (previous {before:.3f})" if isinstance(before, int | float) else ""
            print(f"  {key:<48} {value:>12.3f}{_beside_floor(value, figures.get(key + FLOOR_SUFFIX))}{delta}")
    HISTORY.parent.mkdir(exist_ok=True)
    with HISTORY.open("a") as handle:
        handle.write(json.dumps({"at": time.time(), "results": results}) + "\n")
    return 0


def _beside_floor(value: float, floor: float | None) -> str:
    if floor is None:
        return ""
    ratio = f"×{value / floor:.2f}" if floor else "×—"
    return f"   floor {floor:>10.3f}  {ratio}"


def _previous() -> dict[str, dict[str, float]]:
    if not HISTORY.exists():
        return {}
    lines = HISTORY.read_text().splitlines()
    return json.loads(lines[-1])["results"] if lines else {}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
