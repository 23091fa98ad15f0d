"""Hostile strings into every argument of every command and into every writer of automation input.

Each must be refused (CommandError / ValueError) or come out inert: a value a job hands to automation
holds only the characters of names, addresses, versions and networks, and a string that reaches a
YAML file for Ansible from a user or a record is tagged `!unsafe`. A fixed corpus of attacks is
combined with valid values (before, after, inside), so a check that only looks at a prefix fails.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from commands.catalog import load_commands
from commands.grammar import args_of
from commands.parser import parse
from commands.registry import CommandSpec
from kobot import automation_values
from kobot.automation_values import UnsafeValueError, Untrusted
from kobot.automation_yaml import dump_yaml, load_yaml
from kobot.clusters import ClusterRecord, NodeRecord
from kobot.errors import CommandError
from workers import etcd
from workers.ansible.models import PlaybookRun
from workers.ansible.runner import _extravars
from workers.cluster_inputs import checked_terraform_nodes, cluster_vars
from workers.inventory import render_inventory

ATTACKS = (
    "{{ lookup('pipe','id') }}",
    "{{7*7}}",
    "{% for x in range(3) %}x{% endfor %}",
    "{# hidden #}",
    "$(id)",
    "`id`",
    "; id",
    "| id",
    "&& id",
    "a\nb",
    "a\rb",
    "a\tb",
    "key: value",
    "- item",
    "!!python/object/apply:os.system ['id']",
    "&anchor",
    "*alias",
    "-o ProxyCommand=id",
    "-oProxyCommand=id",
    "--extra-vars=@/etc/passwd",
    "..",
    "../../etc/passwd",
    "/etc/passwd",
    "a/b",
    "a\\b",
    "\x00",
    "１２７.０.０.１",  # fullwidth digits
    "рrod",  # Cyrillic р
    "prod\u200b",  # zero-width space
    "\u202eprod",  # right-to-left override
    "\u212aube",  # Kelvin sign, lowercases to ASCII k
    "%eth0",
    "fe80::1%eth0",
    "fe80::1%{{7*7}}",
    "2001:db8::1%eth0",
    "2001:db8::1%{{7*7}}",
    "127.0.0.1",
    "127.1",
    "0x7f000001",
    "2130706433",
    "017700000001",
    "::ffff:127.0.0.1",
    "[::1]",
    "LOCALHOST.",
    "kobot.localhost",
    "0.0.0.0",
    "::",
    "169.254.169.254",
    "224.0.0.1",
    "255.255.255.255",
)
VALID = ("10.0.0.7", "prod", "1.31.4", "node-1", "10.244.0.0/16")


def hostile_values() -> Iterator[str]:
    """Every attack alone, and glued to every valid value in front, behind and in the middle."""
    yield from ATTACKS
    for attack, valid in itertools.product(ATTACKS, VALID):
        yield valid + attack
        yield attack + valid
        yield valid[:2] + attack + valid[2:]


HOSTILE = sorted(set(hostile_values()))
NORMALIZED_BY_THE_PARSER = {"prod\u200b": "prod", "\u202eprod": "prod", "\u212aube": "kube"}
"""Chat text is NFKC-normalized and stripped of format characters before parsing: these become plain."""
SAFE_TEXT = re.compile(r"[A-Za-z0-9._:/-]*")
"""What a value handed to automation may be made of: names, addresses, versions, networks."""
FREE_TEXT_ARGS = frozenset({"break_glass"})
"""Arguments that are audit notes for people, never handed to automation."""

_HOSTILE_SIGNS = ("{{", "{%", "{#", "\n", "$(", "`", ";", "|", " ", "..", "%", "!!", "&", "*")


def assert_inert(value: Any, *, where: str) -> None:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, dict):
        for key, inner in value.items():
            assert_inert(key, where=f"{where}.key")
            assert_inert(inner, where=f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for inner in value:
            assert_inert(inner, where=where)
    elif isinstance(value, str):
        assert SAFE_TEXT.fullmatch(value), f"{where}: {value!r} reached automation"
        assert ".." not in value, f"{where}: {value!r} reached automation"


def refused_or(run: Callable[[], Any], check: Callable[[Any], None]) -> None:
    try:
        result = run()
    except (CommandError, ValueError):
        return
    check(result)


# --- every argument of every command -----------------------------------------------------------------
def _kobot_commands() -> list[CommandSpec]:
    """kobot's own commands: the test plugins other test modules register (free-text fixture commands
    that reach no automation) are not part of what ships."""
    return [
        spec
        for spec in load_commands().values()
        if spec.handler is None or not spec.handler.__module__.startswith("tests.")
    ]


def _argument_cases() -> Iterator[tuple[str, str, str]]:
    for spec in _kobot_commands():
        alias = spec.aliases[0]
        if "{cluster}" in alias:  # the cluster stands inside the alias (`backup prod every ...`)
            for info in args_of(spec.args_model):
                yield spec.id, info.name, alias.replace("{cluster}", "prod") + f" {info.name}=" + "{value}"
            yield spec.id, "<cluster>", alias.replace("{cluster}", "{value}")
            continue
        cluster = " prod" if spec.cluster == "required" else ""
        for info in args_of(spec.args_model):
            yield spec.id, info.name, f"{alias}{cluster} {info.name}=" + "{value}"
        if spec.cluster != "none":
            yield spec.id, "<cluster>", f"{alias} " + "{value}"


ARGUMENT_CASES = sorted(set(_argument_cases()))


def _quoted(value: str) -> str:
    return '"' + value.replace('"', "") + '"'


@pytest.mark.parametrize(("command", "argument", "template"), ARGUMENT_CASES)
def test_every_argument_of_every_command_refuses_or_neutralizes_hostile_text(
    command: str, argument: str, template: str
) -> None:
    spec = load_commands()[command]
    for value in HOSTILE:
        text = template.format(value=_quoted(value))

        def check(parsed: Any, text: str = text) -> None:
            assert parsed.cluster is None or SAFE_TEXT.fullmatch(parsed.cluster), text
            if spec.job_kind is None:
                return
            for name, inner in parsed.args.items():
                if name not in FREE_TEXT_ARGS:
                    assert_inert(inner, where=f"{text} → {name}")

        refused_or(lambda text=text: parse(text), check)


def test_the_command_corpus_reaches_every_command_and_argument() -> None:
    """The parametrization above is built from the registry: a new command or argument is covered."""
    commands = {command for command, _, _ in ARGUMENT_CASES}
    assert commands == {spec.id for spec in _kobot_commands() if args_of(spec.args_model)} | {
        spec.id for spec in _kobot_commands() if spec.cluster != "none"
    }
    assert ("cluster.create", "hosts", "create cluster prod hosts={value}") in ARGUMENT_CASES
    assert ("node.add", "host", "add node prod host={value}") in ARGUMENT_CASES


@pytest.mark.parametrize("attack", ATTACKS)
def test_host_arguments_refuse_every_attack(attack: str) -> None:
    for text in (
        f"create cluster prod masters=1 workers=0 hosts={_quoted(attack)}",
        f"add node prod host={_quoted(attack)}",
    ):
        if attack in NORMALIZED_BY_THE_PARSER:
            parsed = parse(text)
            host = parsed.args.get("host") or parsed.args["hosts"][0]
            assert host == NORMALIZED_BY_THE_PARSER[attack]
            continue
        with pytest.raises(CommandError):
            parse(text)


# --- every writer of automation input --------------------------------------------------------------------
def _inventory_text(rows: list[tuple[str, str, str]], variables: dict[str, Any] | None = None) -> str:
    return dump_yaml(render_inventory(nodes=rows, ssh_user="root", ssh_key_path=None, cluster_vars=variables))


def _assert_tagged_where_hostile(text: str) -> None:
    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                assert_inert(key, where=f"{where} key") if key is not None else None
                walk(inner, f"{where}.{key}")
        elif isinstance(value, list):
            for inner in value:
                walk(inner, where)
        elif isinstance(value, str) and any(sign in value for sign in _HOSTILE_SIGNS):
            assert isinstance(value, Untrusted), f"{where}: {value!r} is written without !unsafe"

    walk(load_yaml(text), "inventory")


@pytest.mark.parametrize("value", HOSTILE)
def test_inventory_builder_refuses_or_tags_every_hostile_value(value: str) -> None:
    refused_or(lambda: _inventory_text([("prod-master-1", "master", value)]), _assert_tagged_where_hostile)
    refused_or(lambda: _inventory_text([(value, "master", "10.0.0.7")]), _assert_tagged_where_hostile)
    refused_or(
        lambda: _inventory_text([("prod-master-1", "master", "10.0.0.7")], {"site_note": value}),
        _assert_tagged_where_hostile,
    )
    for field in ("version", "cni", "pod_cidr", "service_cidr", "kube_proxy_mode", "api_vip"):
        # a record with the value in the store: refused where it is loaded, or where it is written
        refused_or(
            lambda field=field: cluster_vars(
                ClusterRecord.model_validate({"name": "prod", "spec": {field: value}})
            ),
            lambda result, field=field: assert_inert(result, where=field),
        )
    record = ClusterRecord(name="prod")
    refused_or(
        lambda: cluster_vars(record.model_copy(update={"name": value})),
        lambda r: assert_inert(r, where="name"),
    )


@pytest.mark.parametrize("value", HOSTILE)
def test_terraform_variables_refuse_every_hostile_value(value: str) -> None:
    node = {"role": "worker", "ip": "10.0.0.7", "zone": "az-1", "cpu": 4, "memory": 8192, "disk": 80}
    for name, changed in (
        (value, node),
        ("prod-worker-1", {**node, "ip": value}),
        ("prod-worker-1", {**node, "zone": value}),
        ("prod-worker-1", {**node, "role": value}),
    ):
        refused_or(
            lambda name=name, changed=changed: checked_terraform_nodes({name: changed}),
            lambda result: assert_inert(result, where="terraform nodes"),
        )


@pytest.mark.parametrize("value", HOSTILE)
def test_paths_built_from_ids_refuse_every_hostile_value(value: str, tmp_path: Path) -> None:
    def inside(path: Path) -> None:
        assert path.resolve().is_relative_to(tmp_path.resolve()), path
        assert_inert(path.name, where="path")

    refused_or(lambda: etcd.backups_dir(data_dir=tmp_path, cluster=value), inside)
    refused_or(lambda: etcd.snapshot_path(data_dir=tmp_path, cluster="prod", backup_id=value), inside)
    refused_or(lambda: automation_values.path_inside(tmp_path, value, what="job id"), inside)
    backup = etcd.EtcdBackup(
        id="prod-1", cluster="prod", file=value, size=1, sha256="0" * 64, created_at="2025-01-01T00:00:00Z"
    )
    with pytest.raises(Exception, match=r"names no file kobot would read|is missing"):
        etcd.verified_file(data_dir=tmp_path, backup=backup)


@pytest.mark.parametrize("value", HOSTILE)
def test_extra_vars_from_steps_are_always_tagged(value: str, tmp_path: Path) -> None:
    run = PlaybookRun(
        job_id="1",
        step="snapshot",
        attempt=1,
        playbook="etcd_backup.yml",
        playbooks_dir=tmp_path,
        inventory=tmp_path / "inventory.yml",
        artifacts_root=tmp_path,
        extravars={"kube_version": value, "nodes_to_add": [value], "nested": {"name": value}},
        site_vars={"offline_repo_url": "http://repo.example/{{ arch }}"},
    )
    written = load_yaml(dump_yaml(_extravars(run)))
    assert isinstance(written["kube_version"], Untrusted) and written["kube_version"] == value
    assert all(isinstance(item, Untrusted) for item in written["nodes_to_add"])
    assert isinstance(written["nested"]["name"], Untrusted)
    # the operator's own site variables may be templates on purpose
    assert not isinstance(written["offline_repo_url"], Untrusted)


def test_nodes_from_a_record_are_checked_again_when_written() -> None:
    """A record edited in the store is refused where the inventory is written, not only at the command."""
    record = ClusterRecord(
        name="prod", nodes=[NodeRecord(name="prod-master-1", role="master", address="fe80::1%{{7*7}}")]
    )
    with pytest.raises(UnsafeValueError, match="zone id"):
        render_inventory(
            nodes=[(n.name, n.role, n.address) for n in record.nodes], ssh_user="root", ssh_key_path=None
        )


THIS_MACHINE = (
    "127.0.0.1",
    "127.1",
    "0x7f000001",
    "2130706433",
    "017700000001",
    "::ffff:127.0.0.1",
    "[::1]",
    "::1",
    "LOCALHOST.",
    "localhost",
    "kobot.localhost",
    "0.0.0.0",
    "::",
    "169.254.169.254",
    "fe80::1",
    "224.0.0.1",
    "255.255.255.255",
)


@pytest.mark.parametrize("address", THIS_MACHINE)
def test_every_spelling_of_this_machine_is_refused_by_the_command_and_the_inventory(address: str) -> None:
    with pytest.raises(CommandError):
        parse(f"add node prod host={_quoted(address)}")
    with pytest.raises(ValueError):
        render_inventory(nodes=[("prod-master-1", "master", address)], ssh_user="root", ssh_key_path=None)
