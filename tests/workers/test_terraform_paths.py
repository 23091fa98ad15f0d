"""Terraform paths built from stored names stay where kobot keeps Terraform: a provider names one of
kobot's host modules, a cluster name one directory under the Terraform work root.

A record edited in the store (or written by an older kobot) may carry any text; these are the places
such text would become a path.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kobot.errors import StepFailedError
from kobot.settings import Settings
from workers.terraform import TerraformWorkspace, workspace_for
from workers.terraform.preview import preview_hosts

REPO = Path(__file__).resolve().parents[2]
MODULES = REPO / "terraform" / "modules"
ESCAPES = ["../../../tmp/elsewhere", "..", "vsphere/../../x", "/etc"]


@pytest.mark.parametrize("provider", [*ESCAPES, "manual", "testhosts", "cloud-init", ""])
def test_a_provider_that_names_no_host_module_is_refused(tmp_path: Path, provider: str) -> None:
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(StepFailedError) as caught:
        workspace_for(settings=settings, cluster="prod", provider=provider)
    assert "openstack" in caught.value.user_message and "vsphere" in caught.value.user_message


def test_the_known_providers_get_their_module(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    for provider in ("vsphere", "openstack"):
        workspace = workspace_for(settings=settings, cluster="prod", provider=provider)
        assert workspace.module_dir == (MODULES / provider).resolve()


@pytest.mark.parametrize("cluster", ESCAPES)
def test_a_cluster_name_that_leaves_the_work_root_gets_no_workspace(tmp_path: Path, cluster: str) -> None:
    with pytest.raises(StepFailedError) as caught:
        TerraformWorkspace(
            cluster=cluster, module_dir=MODULES / "testhosts", work_root=tmp_path / "terraform"
        )
    assert caught.value.task == "terraform"


@pytest.mark.parametrize("cluster", ESCAPES)
async def test_a_preview_for_a_cluster_name_that_leaves_the_work_root_reads_and_writes_nothing(
    tmp_path: Path, cluster: str
) -> None:
    work_root = tmp_path / "data" / "terraform"
    work_root.mkdir(parents=True)
    outside = (work_root / cluster).resolve()
    state = outside / "terraform.tfstate"
    if outside.is_relative_to(tmp_path):
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text("{}")
    before = sorted(tmp_path.rglob("*"))

    answer = await preview_hosts(
        work_root=work_root,
        module_dir=MODULES / "testhosts",
        provider="vsphere",
        cluster=cluster,
        variables={"nodes": {}},
        mirror_dir=None,
        # were a child started, it would only say so: the answer must come before any child
        command=(sys.executable, "-c", 'print(\'kobot-preview: {"problem": "a child ran"}\')'),
    )

    assert answer.summary is None
    assert answer.problem is not None and "cluster name" in answer.problem
    assert sorted(tmp_path.rglob("*")) == before, "no preview directory, no copied state"
