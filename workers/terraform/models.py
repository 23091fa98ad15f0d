"""What kobot reads back from Terraform: node outputs and change summaries."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class NodeOutput(BaseModel):
    """One machine as the module's `nodes` output describes it (the inventory is built from these)."""

    model_config = ConfigDict(frozen=True)

    name: str
    ip: str
    role: str
    id: str


class TerraformChangeSummary(BaseModel):
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


class TerraformPlanSummary(TerraformChangeSummary):
    """A plan's summary; nothing was changed."""
