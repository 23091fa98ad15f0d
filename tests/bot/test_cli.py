"""Starting `kobot` with settings from the environment and a YAML file (real processes).

`kobot parse` has its own tests in tests/commands/test_cli_parse.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def kobot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KOBOT_")}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=REPO,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_bad_setting_stops_the_start_naming_it(tmp_path: Path) -> None:
    done = kobot("serve", env={"KOBOT_HTTP_PORT": "eighty", "KOBOT_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert "KOBOT_HTTP_PORT" in done.stderr


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    done = kobot("worker", "--burst", env={"KOBOT_CONFIG_FILE": str(tmp_path / "nope.yaml")})
    assert done.returncode == 2
    assert "KOBOT_CONFIG_FILE" in done.stderr


def test_settings_come_from_a_yaml_file_with_the_environment_winning(tmp_path: Path) -> None:
    config = tmp_path / "kobot.yaml"
    config.write_text("http_port: 70000\n")
    done = kobot("serve", env={"KOBOT_CONFIG_FILE": str(config), "KOBOT_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2 and "KOBOT_HTTP_PORT" in done.stderr  # the file's bad value is named
    config.write_text("log_level: LOUD\n")
    done = kobot(
        "worker",
        "--burst",
        env={
            "KOBOT_CONFIG_FILE": str(config),
            "KOBOT_LOG_LEVEL": "INFO",
            "KOBOT_DATA_DIR": str(tmp_path / "d"),
        },
    )
    assert done.returncode == 0, done.stderr  # the environment's good value wins over the file's bad one


def test_the_embedded_default_starts_from_a_relative_data_dir(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KOBOT_")}
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "chat"],
        cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(REPO), "KOBOT_DATA_DIR": ".kobot"},
        input="list clusters\nexit\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "No clusters yet" in done.stdout
    assert (tmp_path / ".kobot" / "valkey").is_dir()
