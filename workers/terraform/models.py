"""What kobot reads back from Terraform: node outputs and change summaries."""

from __future__ import annotations

import re

from pydantic import ConfigDict

from kobot.deferred_models import DeferredModel

RESULT_KEY = "kobot_result"
"""Key of the last JSON line a Terraform runner child prints: its return code and captured output."""

RESOURCE_ADDRESS = re.compile(
    r'(?:module\.[a-z0-9_-]+\.)*[a-z0-9_]+\.[a-z0-9_-]+(?:\["[A-Za-z0-9._-]{1,63}"\])?'
)
"""A resource address as kobot's host modules make them (types, names and node-name keys); anything
else Terraform reports is left out of what chat sees."""


class NodeOutput(DeferredModel):
    """One machine as the module's `nodes` output describes it (the inventory is built from these)."""

    model_config = ConfigDict(frozen=True)

    name: str
    ip: str
    role: str
    id: str


class TerraformChangeSummary(DeferredModel):
    """Counts from Terraform's change_summary event, plus the node names each kind of change touches."""

    model_config = ConfigDict(frozen=True)

    add: int = 0
    change: int = 0
    destroy: int = 0
    adding: tuple[str, ...] = ()
    changing: tuple[str, ...] = ()
    destroying: tuple[str, ...] = ()

    def line(self) -> str:
        parts = [f"{self.add} to add", f"{self.change} to change", f"{self.destroy} to destroy"]
        kinds = (("add", self.adding), ("change", self.changing), ("destroy", self.destroying))
        named = [(verb, names) for verb, names in kinds if names]
        details = "; ".join(f"{verb}: {', '.join(names)}" for verb, names in named)
        return ", ".join(parts) + (f" ({details})" if details else "")


class PlannedResource(DeferredModel):
    """One resource a plan would create, update, replace or delete."""

    model_config = ConfigDict(frozen=True)

    address: str
    action: str

    @staticmethod
    def well_formed(address: str) -> bool:
        return RESOURCE_ADDRESS.fullmatch(address) is not None


class TerraformPlanSummary(TerraformChangeSummary):
    """A plan's summary; nothing was changed."""

    resources: tuple[PlannedResource, ...] = ()
