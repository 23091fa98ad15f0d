"""The house's layers are a contract that `make test` checks; these tests show it holds and that it bites."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kobot", "workers", "commands", "alerts", "bot")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def _copy_of_the_house(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_layers_contract_holds_for_the_code_as_it_is(tmp_path: Path) -> None:
    result = _lint_imports(_copy_of_the_house(tmp_path))
    assert result.returncode == 0, result.stdout
    assert "0 broken" in result.stdout


def test_an_upward_import_from_the_ground_floor_breaks_the_contract(tmp_path: Path) -> None:
    house = _copy_of_the_house(tmp_path)
    errors = house / "kobot" / "errors.py"
    errors.write_text(errors.read_text() + "\nimport bot.dispatcher  # deliberately wrong\n")
    result = _lint_imports(house)
    assert result.returncode != 0
    assert "kobot is not allowed to import bot" in result.stdout


def test_a_worker_importing_a_chat_adapter_breaks_the_contract(tmp_path: Path) -> None:
    house = _copy_of_the_house(tmp_path)
    jobs = house / "workers" / "jobs.py"
    jobs.write_text(jobs.read_text() + "\nimport bot.chat.slack.adapter  # deliberately wrong\n")
    result = _lint_imports(house)
    assert result.returncode != 0
    assert "workers is not allowed to import bot" in result.stdout


def test_every_module_and_package_of_bot_has_a_floor_in_the_contract() -> None:
    """bot/ holds two floors, named module by module; one left out would be bound by neither."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (layers,) = [c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    named = {name.strip() for layer in layers for name in layer.split(":")}
    rooms = {
        f"bot.{path.stem}"
        for path in (ROOT / "bot").iterdir()
        if path.suffix == ".py" and path.stem != "__init__"
    } | {f"bot.{path.name}" for path in (ROOT / "bot").iterdir() if (path / "__init__.py").exists()}
    assert sorted(rooms - named) == []
