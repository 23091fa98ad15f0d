"""Every executable a role runs on a host is installed by some role, or ships with every supported OS.

The tests walk the tasks of every role: each `command`/`shell` task's program (its argv[0], with a
`{{ var }}` resolved through the role defaults) must come from a package a role installs, a binary a role
puts on the PATH, or the base system of EL 8/9 and Ubuntu 22.04/24.04. A host that lacks the program
fails only on a customer's machine, so this is where that is caught.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROLES = Path(__file__).resolve().parents[2] / "playbooks" / "roles"

BASE_SYSTEM = frozenset(
    {
        "mv",
        "cat",
        "sysctl",
        "modprobe",
        "swapoff",
        "openssl",
        "sha256sum",
        "cut",
        "bash",
        "getenforce",
        "setenforce",
        "ip",
    }
)
"""Programs of the minimal install of every supported OS (coreutils, procps, kmod, util-linux, openssl,
iproute2, and on EL policycoreutils; getenforce only runs on EL)."""

PROVIDES = {
    "kubeadm": {"kubeadm"},
    "kubelet": {"kubelet"},
    "kubectl": {"kubectl"},
    "cri-tools": {"crictl"},
    "containerd": {"containerd", "ctr"},
    "containerd.io": {"containerd", "ctr"},
    "haproxy": {"haproxy"},
    "keepalived": {"keepalived"},
    "chrony": {"chronyd", "chronyc"},
    "ipvsadm": {"ipvsadm"},
}
"""What each package puts on the PATH (the Kubernetes, Docker and distribution packages)."""

_INSTALL_MODULES = ("ansible.builtin.package", "ansible.builtin.apt", "ansible.builtin.dnf")
_COMMAND_MODULES = ("ansible.builtin.command", "ansible.builtin.shell")
_JINJA = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_NAME = re.compile(r"\b([a-z_][a-z0-9_]*)\b")
_WORD = re.compile(r"'([A-Za-z0-9][\w.+-]*)'|^([A-Za-z0-9][\w.+-]*)$")


def _defaults() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted(ROLES.glob("*/defaults/main.yml")):
        merged |= yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return merged


def _tasks() -> Iterator[tuple[Path, dict[str, Any]]]:
    def walk(path: Path, tasks: list[dict[str, Any]]) -> Iterator[tuple[Path, dict[str, Any]]]:
        for task in tasks or []:
            yield path, task
            for key in ("block", "rescue", "always"):
                yield from walk(path, task.get(key) or [])

    for path in sorted(ROLES.glob("*/tasks/*.yml")) + sorted(ROLES.glob("*/handlers/*.yml")):
        yield from walk(path, yaml.safe_load(path.read_text(encoding="utf-8")) or [])


def _words(value: Any, defaults: dict[str, Any], seen: frozenset[str] = frozenset()) -> set[str]:
    """Literal names a value can take: list items, quoted words in a Jinja expression, resolved vars."""
    if isinstance(value, list):
        return set().union(*(_words(item, defaults, seen) for item in value)) if value else set()
    if not isinstance(value, str):
        return set()
    found = {a or b for a, b in _WORD.findall(value.strip())}
    for var in {name for expression in _JINJA.findall(value) for name in _NAME.findall(expression)}:
        if var in defaults and var not in seen:
            found |= _words(defaults[var], defaults, seen | {var})
    return {word for word in found if word}


def installed_programs() -> set[str]:
    defaults = _defaults()
    programs: set[str] = set()
    for _, task in _tasks():
        for module in _INSTALL_MODULES:
            if module in task:
                for package in _words(task[module].get("name"), defaults):
                    # a pinned name (kubeadm=1.31.4-*, cri-tools-1.31.*) installs the package itself
                    bare = re.split(r"[=]|-(?=\d)", package)[0]
                    programs |= PROVIDES.get(bare, set())
        link = task.get("ansible.builtin.file", {})
        if isinstance(link, dict) and link.get("state") == "link" and "bin_dir" in str(link.get("dest")):
            programs |= _words(task.get("loop"), defaults)
        programs |= _placed_program(task)
    return programs


def _placed_program(task: dict[str, Any]) -> set[str]:
    """A program a role writes itself: a script it templates or copies to a path (mode executable), or the
    binary an unarchive `creates`."""
    for module in ("ansible.builtin.template", "ansible.builtin.copy"):
        spec = task.get(module)
        if isinstance(spec, dict) and str(spec.get("mode", "")).endswith(("755", "750", "700", "+x")):
            return {_literal_name(str(spec.get("dest", "")))} - {""}
    unpack = task.get("ansible.builtin.unarchive")
    if isinstance(unpack, dict) and unpack.get("creates"):
        return {_literal_name(str(unpack["creates"]))} - {""}
    return set()


def _literal_name(path: str) -> str:
    """The file name at the end of a path, when it is literal (`{{ dir }}/kube-bench` -> kube-bench)."""
    name = path.rsplit("/", 1)[-1]
    return "" if "{{" in name or "}}" in name else name


def run_programs() -> dict[str, list[str]]:
    """Program -> the tasks that run it."""
    defaults = _defaults()
    runs: dict[str, list[str]] = {}
    for path, task in _tasks():
        for module in _COMMAND_MODULES:
            if module not in task:
                continue
            spec = task[module]
            if isinstance(spec, dict) and "argv" in spec:
                argv = spec["argv"]
                local = task.get("vars") or {}
                lists = (
                    [n for e in _JINJA.findall(argv) for n in _NAME.findall(e) if n in local]
                    if isinstance(argv, str)
                    else []
                )
                if lists:  # built from a list in the task's vars: that list's first item
                    argv = local[lists[0]]
                if isinstance(argv, str):  # a Jinja expression building the list: its first literal
                    names = set(re.findall(r"\['([^']+)'", argv)[:1])
                elif "{{" in argv[0] and _literal_name(argv[0]):
                    names = {_literal_name(argv[0])}  # a program under a templated folder
                else:
                    names = _words(argv[0], defaults) if "{{" in argv[0] else {argv[0]}
            else:
                text = spec if isinstance(spec, str) else spec.get("cmd", "")
                names = {
                    shlex.split(part.strip())[0]
                    for line in text.splitlines()
                    for part in line.rstrip("\\").split("|")
                    if part.strip() and not part.strip().startswith(("set ", "#", "-"))
                }
            for name in names:
                runs.setdefault(Path(name).name, []).append(f"{path.relative_to(ROLES)}: {task.get('name')}")
        validate = next((task[m].get("validate") for m in ("ansible.builtin.template",) if m in task), None)
        if validate:
            for name in _words(validate.split(" ")[0].strip("\"{' "), defaults) or {"haproxy"}:
                runs.setdefault(name, []).append(f"{path.relative_to(ROLES)}: {task.get('name')} (validate)")
    return runs


def test_every_program_a_role_runs_is_installed_by_a_role_or_part_of_the_base_system() -> None:
    installed = installed_programs() | BASE_SYSTEM
    missing = {name: where for name, where in run_programs().items() if name not in installed}
    assert not missing, f"run but never installed: {missing}"


def test_the_walk_sees_the_programs_of_backup_restore_and_image_preload() -> None:
    runs = run_programs()
    assert {"etcdctl", "etcdutl", "crictl", "ctr", "kubeadm", "kubectl", "openssl"} <= set(runs)
    assert {
        "etcdctl",
        "etcdutl",
        "crictl",
        "kubeadm",
        "kubelet",
        "kubectl",
        "haproxy",
    } <= installed_programs()
