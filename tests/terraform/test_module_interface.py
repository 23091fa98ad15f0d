"""The host modules share one interface: a `nodes` map in, a `nodes` map out.

Terraform modules cannot share a file, so each carries its own copy of `nodes.tf`; these tests keep the
copies identical, keep every module declaring `nodes` once and only there, and keep both sides of the
interface matched to what kobot writes (`checked_terraform_nodes`) and reads back (`NodeOutput`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workers.cluster_inputs import checked_terraform_nodes
from workers.terraform.models import NodeOutput

REPO = Path(__file__).resolve().parents[2]
MODULES = REPO / "terraform" / "modules"
HOST_MODULES = sorted(path for path in MODULES.iterdir() if any(path.glob("*.tf")))
INTERFACE_FILE = "nodes.tf"

_BLOCK_START = re.compile(r'^(variable|output)\s+"([A-Za-z0-9_-]+)"\s*\{', re.MULTILINE)


def blocks(text: str, kind: str, name: str) -> list[str]:
    """The bodies of every top-level `kind "name" { ... }` block (braces inside strings skipped)."""
    found: list[str] = []
    for match in _BLOCK_START.finditer(text):
        if (match.group(1), match.group(2)) != (kind, name):
            continue
        depth, index, in_string = 1, match.end(), False
        while depth:
            char = text[index]
            if in_string:
                if char == "\\":
                    index += 1
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
            index += 1
        found.append(text[match.end() : index - 1])
    return found


def module_text(module: Path) -> str:
    return "\n".join(path.read_text() for path in sorted(module.glob("*.tf")))


def object_attributes(variable_body: str) -> set[str]:
    """Attribute names of the `map(object({ ... }))` type of the `nodes` variable."""
    match = re.search(r"object\(\{(.*?)\}\)", variable_body, re.DOTALL)
    assert match is not None, "the nodes variable is a map of objects"
    return set(re.findall(r"([a-z_]+)\s*=", match.group(1)))


def output_attributes(output_body: str) -> set[str]:
    """Attribute names of each value in the `nodes` output's `for name, x in ... : name => { ... }`."""
    match = re.search(r"=>\s*\{(.*?)\}", output_body, re.DOTALL)
    assert match is not None, "the nodes output maps each node name to an object"
    return set(re.findall(r"^\s*([a-z_]+)\s*=", match.group(1), re.MULTILINE))


def test_there_are_host_modules_to_compare() -> None:
    assert {path.name for path in HOST_MODULES} >= {"openstack", "vsphere", "testhosts"}


def test_every_host_module_carries_the_same_nodes_tf() -> None:
    copies = {module.name: (module / INTERFACE_FILE).read_text() for module in HOST_MODULES}
    reference = copies["vsphere"]
    assert {name for name, text in copies.items() if text != reference} == set()


@pytest.mark.parametrize("module", HOST_MODULES, ids=lambda path: path.name)
def test_nodes_is_declared_once_and_only_in_nodes_tf(module: Path) -> None:
    assert len(blocks(module_text(module), "variable", "nodes")) == 1
    assert len(blocks((module / INTERFACE_FILE).read_text(), "variable", "nodes")) == 1
    assert len(blocks(module_text(module), "output", "nodes")) == 1


@pytest.mark.parametrize("module", HOST_MODULES, ids=lambda path: path.name)
def test_the_nodes_output_gives_what_kobot_reads_back(module: Path) -> None:
    (output,) = blocks(module_text(module), "output", "nodes")
    assert output_attributes(output) == set(NodeOutput.model_fields) - {"name"}


def test_the_nodes_variable_takes_exactly_what_kobot_writes() -> None:
    written = checked_terraform_nodes(
        {"dev-x-worker-1": {"role": "worker", "ip": "", "zone": "", "cpu": 2, "memory": 4096, "disk": 40}}
    )
    (variable,) = blocks((MODULES / "vsphere" / INTERFACE_FILE).read_text(), "variable", "nodes")
    assert object_attributes(variable) == set(written["dev-x-worker-1"])


def test_the_test_modules_take_the_same_nodes_map() -> None:
    """The fixture modules stand in for host modules: they declare the interface too (a typed one has
    the same attributes)."""
    (reference,) = blocks((MODULES / "vsphere" / INTERFACE_FILE).read_text(), "variable", "nodes")
    for main in sorted((REPO / "tests" / "terraform").glob("*/main.tf")):
        text = main.read_text()
        (variable,) = blocks(text, "variable", "nodes")
        assert len(blocks(text, "output", "nodes")) == 1, main
        if "object(" in variable:
            assert object_attributes(variable) == object_attributes(reference), main
