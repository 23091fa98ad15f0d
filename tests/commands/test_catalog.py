"""The registry as a whole: every command complete, bilingual, consistent, and its examples parse."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import ValidationError

from commands.catalog import load_commands
from commands.grammar import args_of, has_cjk
from commands.parser import parse
from commands.registry import CommandSpec, typed_args
from kobot.job_records import JobKind
from kobot.risk import Risk

SPECS = {
    # the built-in catalog: plugins loaded by other tests (tests.fixtures.operations) register more
    command_id: spec
    for command_id, spec in load_commands().items()
    if spec.args_model.__module__.startswith("commands.")
}
EXPECTED = {
    "help",
    "whoami",
    "channel.bind",
    "channel.unbind",
    "cluster.list",
    "cluster.show",
    "cluster.plan",
    "cluster.create",
    "cluster.delete",
    "workers.scale",
    "node.add",
    "node.autoheal",
    "node.remove",
    "node.replace",
    "cluster.upgrade",
    "certs.renew",
    "etcd.backup",
    "etcd.restore",
    "etcd.schedule",
    "etcd.schedule.show",
    "etcd.schedule.off",
    "etcd.backups",
    "job.status",
    "job.cancel",
    "job.retry",
    "audit",
    "alerts.subscribe",
    "alerts.unsubscribe",
    "notify",
    "kubectl.get",
    "kubectl.describe",
    "kubectl.logs",
    "kubectl.events",
    "kubectl.top",
    "addon.list",
    "addon.show",
    "addon.install",
    "addon.upgrade",
    "addon.uninstall",
    "app.list",
    "app.show",
    "app.install",
    "app.uninstall",
    "health.check",
    "health.schedule",
    "health.schedule.show",
    "health.schedule.off",
    "cis.scan",
    "cis.show",
    "cis.list",
    "cis.schedule",
    "cis.schedule.show",
    "cis.schedule.off",
    "repository.setup",
}
JOB_KINDS_OUTSIDE_ENUM: set[str] = {"addon.install", "addon.upgrade", "addon.uninstall", "repository.setup"}
"""Job kinds a command queues that kobot.job_records.JobKind does not list yet."""
HOST_JOB_KINDS: set[str] = {"repository.setup"}
"""Jobs on a host that belongs to no cluster (the repository host): their scope is fixed, not named."""


def test_every_command_of_the_catalog_is_registered() -> None:
    assert set(SPECS) == EXPECTED


@pytest.mark.parametrize("spec", SPECS.values(), ids=list(SPECS))
def test_command_is_complete_and_bilingual(spec: CommandSpec) -> None:
    english = [a for a in spec.aliases if not has_cjk(a)]
    chinese = [a for a in spec.aliases if has_cjk(a)]
    assert len(english) >= 2 and len(chinese) >= 2, spec.id
    assert spec.summary.endswith(".")
    assert any(has_cjk(e) for e in spec.examples) and any(not has_cjk(e) for e in spec.examples)
    assert spec.cluster in ("required", "optional", "none")
    config = spec.args_model.model_config
    assert config.get("frozen") is True and config.get("extra") == "forbid"


@pytest.mark.parametrize(
    ("spec", "example"),
    [(s, e) for s in SPECS.values() for e in s.examples],
    ids=lambda v: getattr(v, "id", v),
)
def test_every_example_parses_to_its_command(spec: CommandSpec, example: str) -> None:
    parsed = parse(example)
    assert parsed.command in (spec.id, "help")
    assert typed_args(parsed).model_dump(mode="json") == parsed.args


def test_no_phrase_names_two_commands() -> None:
    counts = Counter(
        alias for spec in SPECS.values() for alias in {a.lower() for a in (*spec.aliases, spec.id)}
    )
    assert [alias for alias, n in counts.items() if n > 1] == []


def test_job_kinds_are_known_and_only_on_mutating_commands() -> None:
    for spec in SPECS.values():
        if spec.job_kind is None:
            continue
        assert spec.job_kind in {k.value for k in JobKind} | JOB_KINDS_OUTSIDE_ENUM, spec.id
        assert spec.risk is not Risk.READ, spec.id
        assert spec.cluster == ("none" if spec.job_kind in HOST_JOB_KINDS else "required"), spec.id
    queued = {spec.job_kind for spec in SPECS.values() if spec.job_kind}
    assert queued >= {k.value for k in JobKind}


def test_every_command_that_can_be_risky_takes_a_break_glass_reason() -> None:
    for spec in SPECS.values():
        names = {info.name for info in args_of(spec.args_model)}
        assert ("break_glass" in names) == (spec.risk is Risk.RISKY), spec.id


def test_args_models_refuse_unknown_fields_and_are_frozen() -> None:
    model = SPECS["cluster.delete"].args_model
    with pytest.raises(ValidationError):
        model.model_validate({"force": True})
    instance = model.model_validate({})
    with pytest.raises(ValidationError):
        instance.break_glass = "x"  # type: ignore[attr-defined]


def test_risk_rules_only_lower_the_declared_risk() -> None:
    create = SPECS["cluster.create"]
    manual = create.args_model.model_validate({"masters": 1, "workers": 0, "hosts": ["10.0.0.1"]})
    vsphere = create.args_model.model_validate({"provider": "vsphere"})
    assert (create.risk_for(manual), create.risk_for(vsphere), create.risk) == (
        Risk.CHANGE,
        Risk.RISKY,
        Risk.RISKY,
    )
    scale = SPECS["workers.scale"]
    assert scale.risk_for(scale.args_model.model_validate({"count": 1})) is Risk.CHANGE
    assert scale.risk_for(scale.args_model.model_validate({"delta": -1})) is Risk.RISKY
    assert scale.risk_for(scale.args_model.model_validate({"delta": 1})) is Risk.CHANGE
