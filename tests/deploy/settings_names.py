"""Which `KOBOT_*` environment names kobot's settings read, found by walking the settings models.

The names follow `Settings.model_config`: the `KOBOT_` prefix, then field names, nested models joined by
`__` (`KOBOT_ALERTS__WEBHOOK_BEARER_TOKEN`); below a dict field any key is a name of its own
(`KOBOT_WECOM__ROBOT_WEBHOOKS__OPS`), and a model under that dict goes on (`..._ROBOTS__OPS__SECRET`).
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from pydantic import BaseModel

from kobot.settings import CONFIG_FILE_ENV, Settings

KOBOT_NAME = re.compile(r"\bKOBOT_[A-Z0-9_]*[A-Z0-9]")
"""A KOBOT_ name in any text: an environment key, `${KOBOT_X}`, a comment."""

PREFIX = str(Settings.model_config.get("env_prefix", ""))
DELIMITER = str(Settings.model_config.get("env_nested_delimiter", ""))
EXTRA_NAMES = frozenset({CONFIG_FILE_ENV})
"""Read by load_settings itself rather than by a field."""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for member in typing.get_args(annotation):
            model = _model_of(member)
            if model is not None:
                return model
    return None


def _dict_value(annotation: Any) -> Any | None:
    """The value type of a `dict[str, V]` field (also under `| None`), or None for anything else."""
    if typing.get_origin(annotation) is dict:
        return typing.get_args(annotation)[1]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for member in typing.get_args(annotation):
            value = _dict_value(member)
            if value is not None:
                return value
    return None


def _walk(model: type[BaseModel], parts: list[str], seen: str) -> str | None:
    head, rest = parts[0], parts[1:]
    fields = {name.upper(): info for name, info in model.model_fields.items()}
    if head not in fields:
        allowed = ", ".join(sorted(seen + name for name in fields))
        return f"{seen}{head} is not a setting; {model.__name__} has {allowed}"
    annotation = fields[head].annotation
    if not rest:
        return None
    here = f"{seen}{head}{DELIMITER}"
    nested = _model_of(annotation)
    if nested is not None:
        return _walk(nested, rest, here)
    value = _dict_value(annotation)
    if value is not None:
        # rest[0] is a key of the dict; a model value goes on below it
        value_model = _model_of(value)
        if _dict_value(value) is not None:
            return None  # dict of dicts (terraform_variables): any keys below
        if value_model is None:
            return None if len(rest) == 1 else f"{here}{rest[0]} holds a plain value: nothing nests below it"
        return _walk(value_model, rest[1:], f"{here}{rest[0]}{DELIMITER}") if rest[1:] else None
    return f"{seen}{head} is a plain setting: nothing nests below it ({DELIMITER.join(rest)})"


def unknown_setting(name: str) -> str | None:
    """None when kobot reads `name`; otherwise why not, naming what it does read there."""
    if name in EXTRA_NAMES:
        return None
    if not name.startswith(PREFIX):
        return f"{name} does not start with {PREFIX}"
    reason = _walk(Settings, name.removeprefix(PREFIX).split(DELIMITER), PREFIX)
    return None if reason is None else f"{name}: {reason}"


def names_in(text: str) -> list[str]:
    return sorted(set(KOBOT_NAME.findall(text)))


def unknown_settings_in(text: str) -> list[str]:
    """Every KOBOT_ name in `text` (comments too: a commented example gets uncommented) that kobot does
    not read, each with the reason."""
    return [problem for name in names_in(text) if (problem := unknown_setting(name)) is not None]
