"""docker-compose.yml: valid by the Compose specification, and in step with kobot's code (issues 11 and 17).

No engine runs here: the file is validated against the specification's JSON schema, its services' commands
against kobot's CLI parser, and its environment (with .env.example and the image's ENV) against kobot's
settings, so the team topology cannot drift from the code. Every check is shown failing on a copy with one
deliberate mistake.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kobot import defaults
from tests.deploy import dockerfile
from tests.deploy.cli_commands import command_problem
from tests.deploy.files import (
    COMPOSE_FILE,
    COMPOSE_SCHEMA,
    DOCKERFILE,
    ENV_EXAMPLE,
    REPO,
    compose,
    env_example_values,
    pyproject,
    settings_problem,
)
from tests.deploy.settings_names import PREFIX, unknown_settings_in
from workers.ansible.processes import REAP_TIMEOUT_SECONDS
from workers.terraform.workspace import CANCEL_GRACE_SECONDS

STEP_STOP_SECONDS = (
    max(CANCEL_GRACE_SECONDS, defaults.ANSIBLE_CANCEL_GRACE_SECONDS + REAP_TIMEOUT_SECONDS)
    + defaults.CANCEL_POLL_SECONDS
    + 2 * defaults.REDIS_SOCKET_TIMEOUT_SECONDS
)
"""The longest a step takes to end once cancelled: seeing the cancel, the slowest runner's own stop
(Terraform finishing the resource in flight), then the step's record and its event, two store writes."""

DOCUMENTS = [
    REPO / "README.md",
    REPO / "alerts" / "README.md",
    *sorted((REPO / "bot" / "chat").glob("*/SETUP.md")),
]
"""The guides operators copy settings from: a misspelt name there is one they will set."""

RESTART_POLICIES = re.compile(r"^(always|unless-stopped|on-failure(:\d+)?)$")
"""Policies that bring a dead worker back (`no`, the default, does not)."""

PACKAGE_MANAGERS = re.compile(r"\b(apt-get|apt|pip3?|dnf|yum|apk|python -m venv)\b")

DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)")
DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}


def seconds(duration: str) -> float:
    """A Compose duration (`90s`, `1m30s`) in seconds."""
    parts = DURATION_PART.findall(duration)
    assert parts and "".join(a + b for a, b in parts) == duration, f"not a Compose duration: {duration!r}"
    return sum(float(amount) * DURATION_UNITS[unit] for amount, unit in parts)


def kobot_services(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run kobot's image (built from this repository)."""
    return {
        name: service
        for name, service in spec["services"].items()
        if "build" in service or str(service.get("image", "")).startswith("kobot:")
    }


def args_of(command: str | list[str] | None) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def schema_problems(text: str) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(COMPOSE_SCHEMA.read_text()))
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '(top)'}: {error.message}"
        for error in validator.iter_errors(compose(text))
    ]


def image_env() -> dict[str, str]:
    return dockerfile.parse(DOCKERFILE.read_text()).final.env()


def compose_problems(text: str) -> list[str]:
    """What keeps this compose file from running kobot as the code expects; empty when nothing does."""
    spec = compose(text)
    problems = schema_problems(text)
    services = kobot_services(spec)
    if {"bot", "worker"} - set(services):
        return [*problems, f"kobot's services are {sorted(services)}, not bot and worker"]

    version = pyproject()["project"]["version"]
    image_args = {
        i.words()[0].partition("=")[0] for i in dockerfile.parse(DOCKERFILE.read_text()).global_args
    }
    for name, service in services.items():
        if service.get("image") != f"kobot:{version}":
            problems.append(
                f"{name}: image {service.get('image')} is not kobot:{version} (pyproject's version)"
            )
        build = service.get("build", {})
        if build.get("context") != ".":
            problems.append(f"{name}: not built from this repository's Dockerfile (build context {build})")
        for arg in build.get("args", {}):
            if arg not in image_args:
                problems.append(
                    f"{name}: build arg {arg} is not an ARG of the Dockerfile ({sorted(image_args)})"
                )
        if "entrypoint" in service:
            problems.append(f"{name}: overrides the image's entrypoint (kobot under tini)")
        args = args_of(service.get("command"))
        problem = command_problem(args)
        if problem:
            problems.append(f"{name}: {problem}")
        if PACKAGE_MANAGERS.search(" ".join(args)):
            problems.append(f"{name}: installs packages at container start: {' '.join(args)}")
        environment = {str(k): str(v) for k, v in (service.get("environment") or {}).items()}
        example = env_example_values(ENV_EXAMPLE.read_text())
        values = {k: v for k, v in {**image_env(), **example, **environment}.items() if k.startswith(PREFIX)}
        problem = settings_problem(values)
        if problem:
            problems.append(f"{name}: its environment does not start kobot's settings: {problem}")

    # The store: the service the URL names, persisted (AOF) and limited without ever evicting.
    urls = {
        str((service.get("environment") or {}).get(f"{PREFIX}REDIS_URL")) for service in services.values()
    }
    if len(urls) != 1:
        problems.append(f"kobot's services do not share one store: KOBOT_REDIS_URL is {sorted(urls)}")
    redis_url = min(urls)
    host = re.sub(r"^redis://([^:/]+).*", r"\1", redis_url)
    store = spec["services"].get(host)
    if store is None:
        problems.append(f"KOBOT_REDIS_URL {redis_url!r} names no service")
    else:
        args = args_of(store.get("command"))
        options = dict(zip(args[1::2], args[2::2], strict=False))
        expected = {
            "--appendonly": "yes",
            "--maxmemory": defaults.VALKEY_MAXMEMORY_DEFAULT,
            "--maxmemory-policy": "noeviction",
        }
        for option, value in expected.items():
            if options.get(option) != value:
                problems.append(f"{host}: {option} is {options.get(option)!r}, expected {value!r}")
        if store.get("restart") is None or not RESTART_POLICIES.match(str(store["restart"])):
            problems.append(f"{host}: no restart policy")

    worker = services["worker"]
    if not RESTART_POLICIES.match(str(worker.get("restart", "no"))):
        problems.append(f"worker: restart {worker.get('restart', 'no')!r} does not bring a dead worker back")
    grace = seconds(str(worker.get("stop_grace_period", "10s")))
    if grace < STEP_STOP_SECONDS:
        problems.append(
            f"worker: stop_grace_period {grace:g} s is shorter than a step's stop ({STEP_STOP_SECONDS:g} s)"
        )
    return problems


def test_compose_file_is_valid_by_the_compose_specification() -> None:
    assert schema_problems(COMPOSE_FILE.read_text()) == []


def test_the_compose_schema_refuses_a_misspelt_service_key() -> None:
    text = COMPOSE_FILE.read_text().replace("stop_grace_period:", "stop_grace:")
    assert any("stop_grace" in problem for problem in schema_problems(text))


def test_compose_file_runs_kobot_as_the_code_expects() -> None:
    assert compose_problems(COMPOSE_FILE.read_text()) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            'command: ["worker"]', 'command: ["work"]', "'work' is not a kobot subcommand", id="command"
        ),
        pytest.param('command: ["worker"]', 'command: ["worker", "--bursty"]', "No such option", id="option"),
        pytest.param(
            'command: ["serve"]',
            'command: sh -c "pip install /app && exec kobot serve"',
            "installs packages at container start",
            id="install-at-start",
        ),
        pytest.param(
            'command: ["serve"]', 'entrypoint: ["sh"]', "overrides the image's entrypoint", id="entry"
        ),
        pytest.param(
            'KOBOT_IN_PROCESS_WORKER: "false"', 'KOBOT_IN_PROCESS_WORKER: "perhaps"', "IN_PROCESS", id="value"
        ),
        pytest.param("image: kobot:0.1.0", "image: kobot:0.0.9", "pyproject's version", id="tag"),
        pytest.param("PYTHON_IMAGE: ${", "PYTHON_BASE: ${", "build arg PYTHON_BASE", id="build-arg"),
        pytest.param("redis://valkey:6379/0", "redis://redis:6379/0", "names no service", id="store-host"),
        pytest.param(
            '    command: ["worker"]',
            '    command: ["worker"]\n    environment: {KOBOT_REDIS_URL: "redis://valkey:6379/1"}',
            "do not share one store",
            id="two-stores",
        ),
        pytest.param('"noeviction"', '"allkeys-lru"', "--maxmemory-policy is 'allkeys-lru'", id="eviction"),
        pytest.param('"--appendonly", "yes"', '"--appendonly", "no"', "--appendonly is 'no'", id="aof"),
        pytest.param(
            '"--maxmemory", "1gb"', '"--maxmemory", "256mb"', "--maxmemory is '256mb'", id="maxmemory"
        ),
        pytest.param(
            "stop_grace_period: 90s", "stop_grace_period: 30s", "shorter than a step's stop", id="grace"
        ),
        pytest.param(
            "  restart: unless-stopped\n\nservices:", "\nservices:", "worker: restart 'no'", id="restart"
        ),
    ],
)
def test_each_compose_check_fails_on_a_mistake(old: str, new: str, expected: str) -> None:
    text = COMPOSE_FILE.read_text()
    assert old in text, f"the mutation no longer applies: {old!r}"
    problems = compose_problems(text.replace(old, new))
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    "path",
    [COMPOSE_FILE, ENV_EXAMPLE, DOCKERFILE, *DOCUMENTS],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_every_kobot_name_in_the_deployment_files_and_guides_is_a_setting(path: Path) -> None:
    assert unknown_settings_in(path.read_text()) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("KOBOT_IN_PROCES_WORKER", "KOBOT_IN_PROCESS_WORKER"),  # the reason lists the real ones
        ("KOBOT_ALERTS__WEBHOOK_TOKEN", "KOBOT_ALERTS__WEBHOOK_BEARER_TOKEN"),
        ("KOBOT_SLACK_BOT_TOKEN", "KOBOT_SLACK"),  # one underscore where nesting needs two
        ("KOBOT_HTTP_PORT__TLS", "plain setting"),
    ],
)
def test_a_misspelt_kobot_name_is_reported_with_the_real_ones(name: str, expected: str) -> None:
    text = ENV_EXAMPLE.read_text() + f"\n#{name}=x\n"
    problems = unknown_settings_in(text)
    assert len(problems) == 1 and name in problems[0] and expected in problems[0], problems
