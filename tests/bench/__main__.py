"""`make bench`: run every tests/bench/bench_*.py `run()` and print its figures for this machine.

Figures, not verdicts: nothing here fails on time. Each run is also appended to
.kobot-bench/history.jsonl so a change to a hot path can be compared with the previous figure.
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
            before = previous.get(name, {}).get(key)
            delta = f"   (previous {before:.3f})" if isinstance(before, int | float) else ""
            print(f"  {key:<48} {value:>12.3f}{delta}")
    HISTORY.parent.mkdir(exist_ok=True)
    with HISTORY.open("a") as handle:
        handle.write(json.dumps({"at": time.time(), "results": results}) + "\n")
    return 0


def _previous() -> dict[str, dict[str, float]]:
    if not HISTORY.exists():
        return {}
    lines = HISTORY.read_text().splitlines()
    return json.loads(lines[-1])["results"] if lines else {}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
