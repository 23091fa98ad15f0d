"""The Terraform preview of `plan cluster` / an IaaS `create`: a child process, a throwaway workspace,
kobot-made answers only, bounded in time and number, and never in the way of other chat commands.

The `testhosts` module (no provider) stands in for vSphere; a slow preview is the real preview child
started by a wrapper that sleeps first (a plan runs no provisioner, so a module cannot be slow here).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.dispatcher import Dispatcher
from bot.runtime import build_runtime
from kobot import defaults
from kobot.conversations import Conversation, Identity, InboundMessage
from kobot.settings import Settings
from kobot.settings_ip_pools import IpPoolConfig
from tests.bot.recording_adapter import RecordingAdapter
from workers.terraform import preview as preview_module
from workers.terraform.preview import TerraformPreview, preview_hosts

REPO = Path(__file__).resolve().parents[2]
MODULES = REPO / "terraform" / "modules"
ADMIN = Identity(platform="terminal", user_id="ops")
VIEWER = Identity(platform="slack", user_id="U0VIEWER")
HERE = Conversation(platform="terminal", conversation_id="local")
SLACK_HERE = Conversation(platform="slack", conversation_id="C0OPS")
SLOW_SECONDS = 4.0


def _nodes(*names: str) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "role": "master" if "master" in name else "worker",
            "ip": f"192.0.2.{i}",
            "cpu": 2,
            "memory": 2048,
            "disk": 20,
            "zone": "az1",
        }
        for i, name in enumerate(names, start=1)
    }


def _wrapper(script: str) -> tuple[str, ...]:
    """The real preview child, started by a Python wrapper that first runs `script`."""
    run = "from workers.terraform.preview import main; main()"
    return (sys.executable, "-c", f"{script}\n{run}")


async def _preview(tmp_path: Path, nodes: dict[str, Any], **kwargs: Any) -> TerraformPreview:
    return await preview_hosts(
        work_root=tmp_path / "terraform",
        module_dir=MODULES / "testhosts",
        provider="vsphere",
        cluster="c1",
        variables={"nodes": nodes},
        mirror_dir=None,
        **kwargs,
    )


def _leftovers(tmp_path: Path) -> list[Path]:
    previews = tmp_path / "terraform" / "previews"
    return list(previews.iterdir()) if previews.exists() else []


async def test_preview_answers_with_kobot_made_lines_and_leaves_no_workspace(tmp_path: Path) -> None:
    answer = await _preview(tmp_path, _nodes("c1-master-1", "c1-worker-1"))
    assert answer.summary is not None, answer.problem
    assert answer.line() == "2 to add, 0 to change, 0 to destroy (add: c1-master-1, c1-worker-1)"
    assert [(r.address, r.action) for r in answer.summary.resources] == [
        ('module.hosts.terraform_data.node["c1-master-1"]', "create"),
        ('module.hosts.terraform_data.node["c1-worker-1"]', "create"),
    ]
    assert _leftovers(tmp_path) == [], "the throwaway workspace is removed"
    assert not (tmp_path / "terraform" / "c1").exists(), "the cluster's own workspace is not touched"


async def test_preview_against_the_cluster_state_shows_only_the_difference(tmp_path: Path) -> None:
    from workers.terraform import TerraformWorkspace

    workspace = TerraformWorkspace(
        cluster="c1", module_dir=MODULES / "testhosts", work_root=tmp_path / "terraform"
    )
    two = _nodes("c1-master-1", "c1-worker-1")
    await asyncio.to_thread(
        workspace.apply, variables={"nodes": two}, job_id="1", on_event=None, should_cancel=None
    )
    state = (tmp_path / "terraform" / "c1" / "terraform.tfstate").read_bytes()

    answer = await _preview(tmp_path, _nodes("c1-master-1", "c1-worker-1", "c1-worker-2"))
    assert answer.line() == "1 to add, 0 to change, 0 to destroy (add: c1-worker-2)", answer
    assert (tmp_path / "terraform" / "c1" / "terraform.tfstate").read_bytes() == state
    assert _leftovers(tmp_path) == []


async def test_a_failing_preview_names_the_stage_never_terraform_text(tmp_path: Path) -> None:
    nodes = _nodes("c1-master-1")
    nodes["c1-master-1"]["role"] = "boss{{ lookup('pipe','id') }}"
    answer = await _preview(tmp_path, nodes)
    assert answer.summary is None
    assert answer.line() == "unavailable: terraform plan failed; an operator can run the create to see why"
    assert "boss" not in answer.model_dump_json() and "master or worker" not in answer.model_dump_json()
    assert _leftovers(tmp_path) == []


async def test_credentials_reach_only_the_child_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = os.urandom(8).hex()
    seen = tmp_path / "seen.json"
    environ = {
        **os.environ,
        "VSPHERE_PASSWORD": secret,
        "OS_PASSWORD": "other-cloud",
        "KOBOT_SECRET_KEY": "k",
    }
    dump = (
        "import json, os, sys\n"
        "seen = {'argv': sys.argv, 'env': dict(os.environ), 'cwd': os.getcwd()}\n"
        f"json.dump(seen, open({str(seen)!r}, 'w'))"
    )
    answer = await _preview(tmp_path, _nodes("c1-worker-1"), environ=environ, command=_wrapper(dump))
    assert answer.summary is not None, answer.problem
    child = json.loads(seen.read_text())
    assert child["env"]["VSPHERE_PASSWORD"] == secret
    assert "OS_PASSWORD" not in child["env"] and "KOBOT_SECRET_KEY" not in child["env"]
    assert secret not in " ".join(child["argv"])
    assert "VSPHERE_PASSWORD" not in os.environ, "never put into kobot's own environment"
    assert Path(child["cwd"]).parent == tmp_path / "terraform" / "previews"
    assert _leftovers(tmp_path) == []


async def test_a_preview_past_its_time_limit_is_killed_with_its_workspace(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)"
    started = time.monotonic()
    answer = await _preview(tmp_path, _nodes("c1-worker-1"), command=_wrapper(script), timeout=1.0)
    assert time.monotonic() - started < 10
    assert answer.line() == "unavailable: Terraform did not answer within 1 s"
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
    assert _leftovers(tmp_path) == []


async def test_previews_beyond_the_limit_are_refused_not_queued(tmp_path: Path) -> None:
    slow = _wrapper(f"import time; time.sleep({SLOW_SECONDS})")
    running = [
        asyncio.create_task(_preview(tmp_path, _nodes("c1-worker-1"), command=slow))
        for _ in range(defaults.TERRAFORM_PREVIEWS_MAX)
    ]
    await asyncio.sleep(0.5)
    extra = await _preview(tmp_path, _nodes("c1-worker-1"))
    assert extra.line().startswith(f"unavailable: {defaults.TERRAFORM_PREVIEWS_MAX} Terraform previews")
    assert all(task.done() is False for task in running)
    answers = await asyncio.gather(*running)
    assert all(a.summary is not None for a in answers), answers
    assert _leftovers(tmp_path) == []


# --- through the dispatcher ---------------------------------------------------------------------------
def _settings(redis_url: str, data_dir: Path, tmp_path: Path, policy: Path | None = None) -> Settings:
    modules = tmp_path / "tf" / "modules"
    modules.mkdir(parents=True)
    (modules / "vsphere").symlink_to(MODULES / "testhosts", target_is_directory=True)
    return Settings(
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        in_process_worker=False,
        terraform_dir=tmp_path / "tf",
        policy_file=policy,
        ip_pools=[IpPoolConfig(zone="lab", cidr="192.0.2.0/24", first="192.0.2.10", last="192.0.2.60")],
    )


async def test_whoami_is_answered_while_three_slow_previews_run(
    redis_url: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        preview_module, "PREVIEW_COMMAND", _wrapper(f"import time; time.sleep({SLOW_SECONDS})")
    )
    # One thread in the default pool: a preview that held a thread (as `asyncio.to_thread` would)
    # would hold whoami's policy lookup behind it.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
    runtime = build_runtime(_settings(redis_url, data_dir, tmp_path))
    try:
        adapter = RecordingAdapter("terminal")
        runtime.adapters["terminal"] = adapter
        dispatcher = Dispatcher(runtime=runtime)
        plans = [
            asyncio.create_task(
                dispatcher.on_message(
                    InboundMessage(
                        identity=ADMIN,
                        conversation=HERE,
                        text=f"plan cluster lab{i} masters=1 workers=1 provider=vsphere",
                    )
                )
            )
            for i in range(3)
        ]
        await asyncio.sleep(0.5)
        assert not any(task.done() for task in plans), "the previews are in flight"
        started = time.monotonic()
        await dispatcher.on_message(InboundMessage(identity=ADMIN, conversation=HERE, text="whoami"))
        whoami_seconds = time.monotonic() - started
        assert not any(task.done() for task in plans), "whoami was answered while every preview ran"
        assert whoami_seconds < SLOW_SECONDS / 2
        await asyncio.gather(*plans)
        replies = [d.message for d in adapter.deliveries]
        terraform = [f.value for m in replies for f in m.fields if f.label == "Terraform"]
        assert sorted(terraform) == [
            f"2 to add, 0 to change, 0 to destroy (add: lab{i}-master-1, lab{i}-worker-1)" for i in range(3)
        ]
        assert _leftovers(data_dir) == []
    finally:
        runtime.close()


async def test_a_viewer_cannot_make_kobot_run_terraform(
    redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    runtime = build_runtime(_settings(redis_url, data_dir, tmp_path))
    try:
        adapter = RecordingAdapter("slack")
        runtime.adapters["slack"] = adapter
        dispatcher = Dispatcher(runtime=runtime)
        await dispatcher.on_message(
            InboundMessage(
                identity=VIEWER,
                conversation=SLACK_HERE,
                text="plan cluster lab masters=1 workers=1 provider=vsphere",
            )
        )
        [refusal] = [d.message for d in adapter.deliveries]
        assert refusal.title == "Not allowed", refusal
        assert not (data_dir / "terraform").exists(), "no Terraform ran, no workspace was made"

        await dispatcher.on_message(
            InboundMessage(
                identity=VIEWER,
                conversation=SLACK_HERE,
                text="plan cluster lab masters=1 workers=0 hosts=192.0.2.5",
            )
        )
        manual = adapter.deliveries[-1].message
        assert manual.title == "Plan for cluster lab", manual
        assert not any(f.label == "Terraform" for f in manual.fields)
    finally:
        runtime.close()
