"""The deployment files under test, and what they are checked against: kobot's settings and pyproject."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

from kobot.errors import SettingsError
from kobot.settings import Settings, load_settings
from tests.deploy.settings_names import PREFIX

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
COMPOSE_SCHEMA = REPO / "tests" / "fixtures" / "compose_spec" / "compose-spec.json"


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def compose(text: str) -> dict[str, Any]:
    """The compose file as the engine sees it before interpolation (YAML merge keys `<<` resolved)."""
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def env_example_values(text: str) -> dict[str, str]:
    """The NAME=value lines of an env file that are not commented out."""
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


@contextmanager
def only_env(values: Mapping[str, str]) -> Iterator[None]:
    """The process environment with these KOBOT_ values and no other KOBOT_ value."""
    kept = {name: value for name, value in os.environ.items() if not name.startswith(PREFIX)}
    with mock.patch.dict(os.environ, {**kept, **values}, clear=True):
        yield


def settings_problem(values: Mapping[str, str]) -> str | None:
    """None when kobot starts its settings from these environment values; otherwise its own message."""
    with only_env(values):
        try:
            settings: Settings = load_settings()
        except SettingsError as exc:
            return exc.user_message
    assert settings is not None
    return None
