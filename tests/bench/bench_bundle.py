"""Bundle planning figures on this machine: Kubernetes 1.32.8 for debian12 and el9, amd64 and arm64,
Calico, monitoring and logging, planned and written as the manifest JSON and the human list."""

from __future__ import annotations

import statistics
import time

from workers.bundle import plan as bundle_plan

ROUNDS = 50


def _plan_once() -> float:
    started = time.perf_counter()
    manifest = bundle_plan.plan_bundle(
        version="1.32.8",
        os=["debian12", "el9"],
        arch=["amd64", "arm64"],
        cni="calico",
        addons=["monitoring", "logging"],
    )
    manifest.model_dump_json()
    manifest.summary_lines()
    return (time.perf_counter() - started) * 1000


def run() -> dict[str, float]:
    """Cold (the roles' defaults read from disk) and warm median/worst plan time."""
    bundle_plan._role_defaults.cache_clear()
    cold = _plan_once()
    timings = [_plan_once() for _ in range(ROUNDS)]
    return {
        "bundle_plan_1v_2os_2arch_cold_ms": cold,
        "bundle_plan_1v_2os_2arch_median_ms": statistics.median(timings),
        "bundle_plan_1v_2os_2arch_max_ms": max(timings),
    }


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name}: {value:.2f}")
