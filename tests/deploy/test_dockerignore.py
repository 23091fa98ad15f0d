"""`.dockerignore`: the build context is exactly what the Dockerfile copies, and never a secret or a cache.

A file the Dockerfile copies but the context leaves out breaks the build; a file in the context that no
COPY uses is at best waste and at worst a secret one careless COPY away from a layer.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.deploy import dockerfile
from tests.deploy.dockerignore import excluded, read_patterns
from tests.deploy.files import DOCKERFILE, DOCKERIGNORE, REPO

GIT_TIMEOUT_SECONDS = 30.0
"""`git ls-files` of this checkout takes well under a second."""

LOCAL_ONLY = (
    ".env",
    ".env.production",
    "playbooks/.env",
    ".venv/bin/python",
    ".git/HEAD",
    ".kobot/secret.key",
    ".kobot/valkey/appendonlydir/appendonly.aof.1.incr.aof",
    ".kobot-bench/run.json",
    ".mypy_cache/3.11/cache.db",
    ".pytest_cache/v/cache/lastfailed",
    ".ruff_cache/CACHEDIR.TAG",
    ".tmp/out.log",
    "kobot.egg-info/PKG-INFO",
    "build/lib/kobot/settings.py",
    "kobot/__pycache__/settings.cpython-311.pyc",
    "bot/chat/__pycache__/x.cpython-311.pyc",
    "terraform/modules/vsphere/.terraform/providers/x",
    "terraform/modules/vsphere/terraform.tfstate",
    "terraform/modules/vsphere/terraform.tfstate.backup",
    "playbooks/cluster_create.retry",
)
"""Paths that exist only on someone's machine (never in git): data, secrets, caches, test output."""


def tracked_files() -> list[str]:
    completed = subprocess.run(
        ["git", "ls-files", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=GIT_TIMEOUT_SECONDS,
    )
    return [path for path in completed.stdout.decode().split("\0") if path]


def copy_sources() -> list[str]:
    parsed = dockerfile.parse(DOCKERFILE.read_text())
    return [
        source.strip("/")
        for stage in parsed.stages
        for sources, _, flags in stage.copies()
        if "from" not in flags
        for source in sources
    ]


def dockerignore_problems(text: str) -> list[str]:
    patterns = read_patterns(text)
    sources = copy_sources()
    problems = []
    for path in tracked_files():
        copied = any(path == source or path.startswith(source + "/") for source in sources)
        if copied and excluded(patterns, path):
            problems.append(f"{path} is copied by the Dockerfile but left out of the context")
        if not copied and not excluded(patterns, path):
            problems.append(f"{path} is sent to the builder but no COPY uses it")
    problems.extend(
        f"{path} (local data, secret or cache) is sent to the builder"
        for path in LOCAL_ONLY
        if not excluded(patterns, path)
    )
    return problems


def test_the_build_context_is_what_the_dockerfile_copies() -> None:
    assert dockerignore_problems(DOCKERIGNORE.read_text()) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param("\n*\n", "\n", ".venv/bin/python (local", id="no-allowlist"),
        pytest.param("!README.md\n", "", "README.md is copied by the Dockerfile", id="copied-file-left-out"),
        pytest.param(
            "!bot/\n", "!bot/\n!tests/\n", "tests/conftest.py is sent to the builder", id="tests-sent"
        ),
        pytest.param("**/.env\n", "", "playbooks/.env (local", id="nested-env"),
        pytest.param("**/*.tfstate\n", "", "terraform.tfstate (local", id="tfstate"),
        pytest.param("**/__pycache__\n**/*.py[cod]\n", "", "__pycache__", id="bytecode"),
    ],
)
def test_each_dockerignore_check_fails_on_a_mistake(old: str, new: str, expected: str) -> None:
    text = DOCKERIGNORE.read_text()
    assert old in text, f"the mutation no longer applies: {old!r}"
    problems = dockerignore_problems(text.replace(old, new))
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("patterns", "path", "out"),
    [
        ("*\n!kobot/\n", "kobot/settings.py", False),
        ("*\n!kobot/\n", "Makefile", True),
        ("*\n!kobot/\n**/__pycache__\n", "kobot/a/__pycache__/b.pyc", True),
        (".git\n", ".git/objects/ab/cd", True),
        ("*.md\n", "docs/a.md", False),  # `*` stays within one path element
        ("**/*.md\n", "docs/a.md", True),
        ("/build\n", "build/x", True),
        ("!x\n", "x", False),
    ],
)
def test_patterns_match_as_dockers_builder_matches_them(patterns: str, path: str, out: bool) -> None:
    assert excluded(read_patterns(patterns), path) is out
