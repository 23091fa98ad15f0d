"""Hosts by Terraform: one workspace per cluster, driving the host module of its provider."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from kobot.cluster_spec import Provider
from kobot.errors import StepFailedError
from workers.terraform.credentials import PROVIDER_ENV_PREFIXES, provider_credentials
from workers.terraform.models import NodeOutput, TerraformChangeSummary, TerraformPlanSummary
from workers.terraform.workspace import TerraformWorkspace

if TYPE_CHECKING:
    # not at run time: the Terraform child processes import this package and need no settings
    from kobot.settings import Settings


HOST_PROVIDERS: tuple[str, ...] = tuple(p.value for p in Provider if p.creates_machines)
"""Providers with a host module in `<terraform_dir>/modules/`; a provider read from a record is one of
these or refused, since it becomes a path."""


def workspace_for(*, settings: Settings, cluster: str, provider: str) -> TerraformWorkspace:
    """The workspace of a cluster, with its provider's credentials taken from kobot's environment.

    Raises StepFailedError for a provider without a host module or a cluster name that is no directory
    name (both come from the record, which may have been edited in the store)."""
    provider = str(getattr(provider, "value", provider))
    if provider not in HOST_PROVIDERS:
        raise StepFailedError(
            f"provider '{provider}' has no Terraform host module; "
            f"kobot creates machines on {', '.join(HOST_PROVIDERS)}",
            task="terraform",
        )
    env = provider_credentials(provider, os.environ)
    return TerraformWorkspace(
        cluster=cluster,
        module_dir=Path(settings.terraform_dir) / "modules" / provider,
        work_root=settings.data_dir / "terraform",
        mirror_dir=settings.terraform_mirror_dir,
        env=env,
    )


__all__ = [
    "HOST_PROVIDERS",
    "PROVIDER_ENV_PREFIXES",
    "NodeOutput",
    "TerraformChangeSummary",
    "TerraformPlanSummary",
    "TerraformWorkspace",
    "provider_credentials",
    "workspace_for",
]
