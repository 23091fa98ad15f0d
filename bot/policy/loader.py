"""Read a policy file into a `Policy`, with every error naming the line it is on.

YAML is composed into nodes (which keep their marks) and turned into plain data while each path's line
is remembered; pydantic's error locations and the cross-checks below are mapped back to those lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.policy import defaults
from bot.policy.document import PolicyDocument
from bot.policy.errors import PolicyError
from bot.policy.models import BUILTIN_ROLE_SPECS, Policy, compile_policy

Loc = tuple[str | int, ...]


def load_policy(path: Path) -> Policy:
    """Parse, validate and compile the policy file at `path`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"policy file {path}: cannot be read ({exc.strerror})") from None
    if len(raw) > defaults.MAX_POLICY_BYTES:
        raise PolicyError(f"policy file {path}: larger than {defaults.MAX_POLICY_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"policy file {path}: not UTF-8 (byte {exc.start})") from None
    return parse_policy(text, source=path)


def parse_policy(text: str, *, source: Path | None = None) -> Policy:
    """Validate policy YAML text; `source` only names the file in errors."""
    where = f"policy file {source}" if source is not None else "policy"
    lines: dict[Loc, int] = {}
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise PolicyError(f"{where}{line}: not valid YAML ({exc.problem or exc.context})") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{where}: not valid YAML ({exc})") from None
    try:
        data: Any = {} if node is None else _to_data(node, (), lines)
    except _NodeProblem as exc:
        raise PolicyError(f"{where} {exc}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{where} line {lines.get((), 1)}: the top level must be a mapping")
    try:
        document = PolicyDocument.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(tuple(err["loc"]), err["msg"], lines) for err in exc.errors()]
        raise PolicyError(f"{where}: " + "; ".join(problems)) from None
    problems = [_describe(loc, msg, lines) for loc, msg in cross_check(document)]
    if problems:
        raise PolicyError(f"{where}: " + "; ".join(problems))
    return compile_policy(document, source=source)


def cross_check(document: PolicyDocument) -> list[tuple[Loc, str]]:
    """References between sections: roles exist, people and groups named exist, identities are unique."""
    problems: list[tuple[Loc, str]] = []
    roles = set(BUILTIN_ROLE_SPECS) | set(document.roles)
    owner: dict[str, str] = {}
    for name, person in document.people.items():
        for index, key in enumerate(person.identities):
            loc: Loc = ("people", name, "identities", index)
            if not _is_identity_key(key):
                problems.append((loc, f"{key!r} is not an identity like slack:U123 or slack:email:a@b"))
            elif key.lower() in owner:
                problems.append((loc, f"{key!r} already belongs to person {owner[key.lower()]!r}"))
            else:
                owner[key.lower()] = name
    for group, members in document.groups.items():
        for index, member in enumerate(members):
            if member not in document.people and not _is_identity_key(member):
                problems.append((("groups", group, index), f"{member!r} is neither a person nor an identity"))
    for index, binding in enumerate(document.bindings):
        if binding.role not in roles:
            problems.append((("bindings", index, "role"), _unknown("role", binding.role, roles)))
        for position, subject in enumerate(binding.subjects):
            message = _subject_problem(subject, document)
            if message:
                problems.append((("bindings", index, "subjects", position), message))
    for index, rule in enumerate(document.approvals):
        if rule.approver_role not in roles:
            problems.append(
                (("approvals", index, "approver_role"), _unknown("role", rule.approver_role, roles))
            )
    for name, api_user in document.api_users.items():
        if api_user.person is not None and api_user.person not in document.people:
            problems.append(
                (("api_users", name, "person"), _unknown("person", api_user.person, document.people))
            )
    return problems


def _subject_problem(subject: str, document: PolicyDocument) -> str | None:
    if subject == "*":
        return None
    kind, _, name = subject.partition(":")
    if kind == "person":
        return None if name in document.people else _unknown("person", name, document.people)
    if kind == "group":
        if name.startswith("ldap:") and len(name) > len("ldap:"):
            return None
        return None if name in _all_groups(document) else _unknown("group", name, _all_groups(document))
    if _is_identity_key(subject):
        return None
    return f"{subject!r} is not a subject: use person:NAME, group:NAME, group:ldap:NAME, an identity or *"


def _all_groups(document: PolicyDocument) -> set[str]:
    names = set(document.groups)
    for person in document.people.values():
        names.update(person.groups)
    return names


def _unknown(kind: str, name: str, known: Mapping[str, Any] | set[str]) -> str:
    listed = ", ".join(sorted(known)) or "none defined"
    return f"unknown {kind} {name!r} (known: {listed})"


def _is_identity_key(key: str) -> bool:
    platform, sep, rest = key.partition(":")
    return bool(sep) and bool(rest) and platform.isidentifier() and platform not in ("person", "group")


def _describe(loc: Loc, message: str, lines: Mapping[Loc, int]) -> str:
    dotted = ".".join(str(part) for part in loc) or "(top level)"
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return f"line {lines[loc[:cut]]} ({dotted}): {message}"
    return f"{dotted}: {message}"


class _NodeProblem(Exception):
    """A structural problem found while turning nodes into data; parse_policy adds the file name."""


def _to_data(node: Node, loc: Loc, lines: dict[Loc, int]) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise _NodeProblem(f"line {key_node.start_mark.line + 1}: keys must be plain strings")
            key = str(_SCALARS.construct_object(key_node))
            if key in result:
                raise _NodeProblem(
                    f"line {key_node.start_mark.line + 1}: {key!r} appears twice "
                    f"(first on line {lines[(*loc, key)]})"
                )
            result[key] = _to_data(value_node, (*loc, key), lines)
            lines[(*loc, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, SequenceNode):
        return [_to_data(item, (*loc, index), lines) for index, item in enumerate(node.value)]
    return _SCALARS.construct_object(node)


_SCALARS = SafeConstructor()
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader when PyYAML was built with it (several times faster); both keep line marks."""
