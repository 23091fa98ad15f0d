"""Operations: each job kind is an ordered list of named steps; each step is a plain function.

Register with `@operation(kind)` on a function that returns the steps for a spec. The step list is
fixed when the job is queued (its names are stored in the record), so a retry resumes at the first
step that did not succeed, even if the code's list changed in between.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from kobot.job_records import JobSpec, StepRecord
from workers.context import StepContext

StepFunction = Callable[["StepContext"], None]


@dataclass(frozen=True)
class Step:
    """One named step: `name` is stable (records refer to it), `title` is what chat shows."""

    name: str
    title: str
    run: StepFunction


@dataclass(frozen=True)
class Operation:
    """The steps of one job, plus what to do to the cluster record when the job ends."""

    kind: str
    steps: tuple[Step, ...]
    on_success: Callable[[StepContext], None] | None = None
    on_failure: Callable[[StepContext], None] | None = None
    final_note: str | None = None
    """Said in the job's summary when it succeeds (e.g. what the operation does not do yet)."""
    final_note_from: Callable[[StepContext], str | None] | None = None
    """What the steps found, said in the summary when the job succeeds (after `final_note`)."""


OperationFactory = Callable[[JobSpec], Operation]

OPERATIONS: dict[str, OperationFactory] = {}


def operation(kind: str) -> Callable[[OperationFactory], OperationFactory]:
    def decorate(factory: OperationFactory) -> OperationFactory:
        OPERATIONS[kind] = factory
        return factory

    return decorate


def load_operations(plugins: list[str] | None = None) -> dict[str, OperationFactory]:
    """Import the built-in operations and any plugin modules, so every kind is registered."""
    importlib.import_module("workers.cluster_create")
    importlib.import_module("workers.day2_ops")
    importlib.import_module("workers.day2_ops.cert_renew")
    importlib.import_module("workers.addons")
    importlib.import_module("workers.bundle.repository_job")
    importlib.import_module("workers.compliance.operation")
    for module in plugins or []:
        importlib.import_module(module)
    return OPERATIONS


def operation_for(spec: JobSpec) -> Operation:
    factory = OPERATIONS.get(spec.kind)
    if factory is None:
        # `kobot serve` registers the built-in kinds after it answers; a job submitted sooner loads them
        load_operations()
        factory = OPERATIONS.get(spec.kind)
    if factory is None:
        raise KeyError(f"no operation registered for job kind {spec.kind!r}")
    return factory(spec)


def initial_steps(op: Operation) -> list[StepRecord]:
    return [StepRecord(name=step.name, title=step.title) for step in op.steps]
