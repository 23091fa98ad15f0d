"""Run runbook: only commands kobot's admin allowed, filled in from the alert group's labels.

Whoever writes alert rules does not choose what runs. An alert names a template by id in its
`kobot_runbook` annotation; the template text comes from the `runbook_commands` setting. Each
`{placeholder}` is filled from a label every alert of the group shares; a value must be a DNS-1123
label and goes in quoted, so it can never become an argument name, an option or a second command.
The finished command is parsed exactly as the dispatcher will parse it, and refused when it would
break glass, in whatever spelling the grammar accepts.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass

from alerts.defaults import RUNBOOK_ANNOTATION
from alerts.models import AlertGroupState
from commands.parser import parse
from kobot.errors import CommandError, SettingsError
from kobot.settings_alerts import placeholders_of

LABEL_VALUE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
"""What a label value must look like to go into a command: a DNS-1123 label (cluster, node, namespace)."""

SAMPLE_VALUE = "x"
"""Stands in for every placeholder when the templates are checked at start."""


class RunbookRefused(Exception):
    """This group offers no runbook; the message says why and is safe to show in chat."""


class BreakGlassRefused(RunbookRefused):
    """The runbook command would skip approval."""


@dataclass(frozen=True)
class Runbook:
    template_id: str
    command: str


def runbook_id(state: AlertGroupState) -> str | None:
    """The template id the group's firing alerts agree on, if any."""
    common = state.common_annotations.get(RUNBOOK_ANNOTATION, "").strip()
    if common:
        return common
    named = {a.annotations.get(RUNBOOK_ANNOTATION, "").strip() for a in state.firing()}
    if len(named) == 1:
        (only,) = named
        return only or None
    return None


def fill(template: str, values: Mapping[str, str]) -> str:
    """The template with each `{name}` replaced by its value in double quotes."""
    pieces = []
    for literal, name, _, _ in string.Formatter().parse(template):
        pieces.append(literal)
        if name is not None:
            pieces.append(f'"{values[name]}"')
    return "".join(pieces)


def refuse_break_glass(command: str, *, what: str) -> None:
    """RunbookRefused when `command` does not parse, or parses with a break-glass reason."""
    try:
        parsed = parse(command)
    except CommandError as exc:
        raise RunbookRefused(f"{what} is not a kobot command: {exc.user_message}") from None
    if parsed.args.get("break_glass"):
        raise BreakGlassRefused(f"{what} would break glass; a runbook always goes through approval")


def runbook_for(state: AlertGroupState, *, templates: Mapping[str, str]) -> Runbook:
    """The command this group's Run runbook button runs, or RunbookRefused saying why there is none."""
    template_id = runbook_id(state)
    if template_id is None:
        raise RunbookRefused("this alert group names no runbook")
    template = templates.get(template_id)
    if template is None:
        raise RunbookRefused(f"runbook {template_id!r} is not one kobot's admin allowed")
    values: dict[str, str] = {}
    for name in placeholders_of(template):
        value = state.label(name) or _shared(state, name)
        if value is None:
            raise RunbookRefused(f"runbook {template_id!r} needs label {name}, which the alerts do not share")
        if not LABEL_VALUE.fullmatch(value):
            raise RunbookRefused(
                f"runbook {template_id!r}: label {name} is not a plain name "
                "(lowercase letters, digits and '-', at most 63)"
            )
        values[name] = value
    command = fill(template, values)
    refuse_break_glass(command, what=f"runbook {template_id!r}")
    return Runbook(template_id=template_id, command=command)


def check_templates(templates: Mapping[str, str]) -> None:
    """At start: SettingsError naming the template that would break glass (checked with sample values;
    a template only a real value makes parse is checked again at every click)."""
    for template_id, template in templates.items():
        sample = fill(template, dict.fromkeys(placeholders_of(template), SAMPLE_VALUE))
        try:
            refuse_break_glass(sample, what=f"alerts.runbook_commands.{template_id}")
        except BreakGlassRefused as exc:
            raise SettingsError(str(exc)) from None
        except RunbookRefused:
            pass


def _shared(state: AlertGroupState, label: str) -> str | None:
    values = {alert.labels.get(label) for alert in (state.firing() or state.alerts)}
    if len(values) == 1:
        (only,) = values
        return only
    return None
