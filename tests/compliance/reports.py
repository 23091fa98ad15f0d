"""The kube-bench fixtures (tests/fixtures/kube_bench) as bytes and as parsed reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workers.compliance.kube_bench import KubeBenchReport, parse_report

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kube_bench"
MASTER = FIXTURES / "master.json"
MASTER_HARDENED = FIXTURES / "master-after-hardening.json"
NODE = FIXTURES / "node.json"


def raw(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_bytes())
    return data


def report(path: Path, *, node: str = "n") -> KubeBenchReport:
    return parse_report(path.read_bytes(), node=node)
