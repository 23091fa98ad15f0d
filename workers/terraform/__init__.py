"""Hosts by Terraform: one workspace per cluster, driving the host module of its provider."""

from __future__ import annotations

import os
from pathlib import Path

from bot.settings import Settings
from workers.terraform.models import NodeOutput, TerraformChangeSummary, TerraformPlanSummary
from workers.terraform.workspace import TerraformWorkspace

PROVIDER_ENV_PREFIXES = {"vsphere": ("VSPHERE_",), "openstack": ("OS_",), "testhosts": ()}
"""Environment variables each provider reads its credentials from; only these reach Terraform."""


def workspace_for(*, settings: Settings, cluster: str, provider: str) -> TerraformWorkspace:
    """The workspace of a cluster, with its provider's credentials taken from kobot's environment."""
    provider = str(getattr(provider, "value", provider))
    prefixes = PROVIDER_ENV_PREFIXES.get(provider, ())
    env = {name: value for name, value in os.environ.items() if prefixes and name.startswith(prefixes)}
    return TerraformWorkspace(
        cluster=cluster,
        module_dir=Path(settings.terraform_dir) / "modules" / provider,
        work_root=settings.data_dir / "terraform",
        mirror_dir=settings.terraform_mirror_dir,
        env=env,
    )


__all__ = [
    "NodeOutput",
    "TerraformChangeSummary",
    "TerraformPlanSummary",
    "TerraformWorkspace",
    "workspace_for",
]
