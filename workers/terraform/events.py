"""Terraform's `-json` UI events turned into kobot job events and change summaries."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kobot.job_records import JobEvent, JobEventType
from workers.masking import Masker
from workers.terraform.models import PlannedResource

NODE_RESOURCE_NAME = "node"
"""Every host module names its per-node resources `node`, keyed by node name: that key is the node."""

ACTION_VERBS = {"create": "adding", "update": "changing", "delete": "destroying", "replace": "changing"}


@dataclass
class EventTranslator:
    """Feeds JobEvents to `on_event` and remembers what a run changed and what went wrong; every text
    from Terraform (diagnostics, provisioner output) passes the masker first."""

    job_id: str
    on_event: Callable[[JobEvent], None] | None = None
    masker: Masker = field(default_factory=Masker)
    counts: dict[str, int] = field(default_factory=dict)
    nodes: dict[str, set[str]] = field(default_factory=lambda: {v: set() for v in set(ACTION_VERBS.values())})
    errors: list[str] = field(default_factory=list)
    failed_node: str | None = None
    outputs: dict[str, Any] | None = None
    planned: list[PlannedResource] = field(default_factory=list)
    """Every resource a plan would touch, by address and action (addresses only: no attribute values)."""

    def feed(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        hook = event.get("hook") or {}
        node = _node_of(hook.get("resource") or {})
        if kind == "planned_change":
            change = event.get("change") or {}
            node = _node_of(change.get("resource") or {})
            action = str(change.get("action"))
            verb = ACTION_VERBS.get(action)
            if node and verb:
                self.nodes[verb].add(node)
            address = str((change.get("resource") or {}).get("addr", ""))
            if verb and PlannedResource.well_formed(address):
                self.planned.append(PlannedResource(address=address, action=action))
        elif kind == "apply_start":
            verb = str(hook.get("action", "apply"))
            self._send(JobEventType.TASK_STARTED, task=f"terraform {verb} {node or _addr(hook)}", host=node)
        elif kind == "apply_complete":
            self._send(JobEventType.TASK_CHANGED, task=f"terraform {hook.get('action', 'apply')}", host=node)
        elif kind == "apply_errored":
            self.failed_node = self.failed_node or node
            self._send(
                JobEventType.TASK_FAILED,
                task="terraform",
                host=node,
                message=self.masker.mask(str(event.get("@message"))),
            )
        elif kind == "diagnostic":
            diagnostic = event.get("diagnostic") or {}
            if diagnostic.get("severity") == "error":
                text = " ".join(str(diagnostic.get(k) or "") for k in ("summary", "detail")).strip()
                text = self.masker.mask(text)
                self.errors.append(text)
                self._send(JobEventType.LOG, message=f"terraform error: {text}")
        elif kind == "change_summary":
            changes = event.get("changes") or {}
            self.counts = {k: int(changes.get(k, 0)) for k in ("add", "change", "remove")}
            self._send(JobEventType.LOG, message=self.masker.mask(str(event.get("@message", ""))))
        elif kind == "outputs":
            self.outputs = dict(event.get("outputs") or {})

    def _send(self, type: JobEventType, **fields: Any) -> None:
        if self.on_event is not None:
            self.on_event(JobEvent(job_id=self.job_id, type=type, **fields))

    def error_text(self) -> str:
        return "; ".join(self.errors[-3:]) or "Terraform failed without a diagnostic"


def _node_of(resource: Mapping[str, Any]) -> str | None:
    key = resource.get("resource_key")
    if resource.get("resource_name") == NODE_RESOURCE_NAME and isinstance(key, str):
        return key
    return None


def _addr(hook: Mapping[str, Any]) -> str:
    return str((hook.get("resource") or {}).get("addr", "resource"))
