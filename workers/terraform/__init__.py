"""Hosts by Terraform: one workspace per cluster, driving the host module of its provider."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from workers.terraform.credentials import PROVIDER_ENV_PREFIXES, provider_credentials
from workers.terraform.models import NodeOutput, TerraformChangeSummary, TerraformPlanSummary
from workers.terraform.workspace import TerraformWorkspace

if TYPE_CHECKING:
    # not at run time: the Terraform child processes import this package and need no settings
    from kobot.settings import Settings


def workspace_for(*, settings: Settings, cluster: str, provider: str) -> TerraformWorkspace:
    """The workspace of a cluster, with its provider's credentials taken from kobot's environment."""
    provider = str(getattr(provider, "value", provider))
    env = provider_credentials(provider, os.environ)
    return TerraformWorkspace(
        cluster=cluster,
        module_dir=Path(settings.terraform_dir) / "modules" / provider,
        work_root=settings.data_dir / "terraform",
        mirror_dir=settings.terraform_mirror_dir,
        env=env,
    )


__all__ = [
    "PROVIDER_ENV_PREFIXES",
    "NodeOutput",
    "TerraformChangeSummary",
    "TerraformPlanSummary",
    "TerraformWorkspace",
    "provider_credentials",
    "workspace_for",
]
