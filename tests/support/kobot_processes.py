"""Real `kobot serve` and `kobot worker` processes for fault tests, talking to a Slack peer on loopback.

Each process runs in a session of its own (so a test can kill it with everything it started) and logs to
a file the test reads when it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from bot.chat.slack.defaults import EVENTS_PATH
from tests.peers.slack import SlackPeer
from tests.peers.slack_events import (
    block_actions,
    event_callback,
    interactive_body,
    mention_event,
    signed_headers,
)
from tests.support.network import LOOPBACK, free_port

REPO = Path(__file__).resolve().parents[2]
FIXTURE_PLAYBOOKS = REPO / "tests" / "fixtures" / "playbooks"
FIXTURE_PLUGIN = "tests.fixtures.operations"

ADMIN_POLICY = """
version: 1
bindings:
  - role: admin
    subjects: ["slack:U0ALICE"]
"""

STOP_TIMEOUT_SECONDS = 30.0
"""Longest a test waits for a kobot process it signalled to exit."""


@dataclass
class KobotProcesses:
    """Starts kobot processes sharing one data dir, Slack peer and settings; stops what is left at exit."""

    tmp_path: Path
    peer: SlackPeer
    env_extra: dict[str, str] = field(default_factory=dict)
    policy: str = ADMIN_POLICY
    port: int = field(default_factory=free_port)
    signing_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.tmp_path / "data"

    @property
    def embedded_socket(self) -> Path:
        return self.data_dir / "valkey" / "valkey.sock"

    def env(self) -> dict[str, str]:
        policy = self.tmp_path / "policy.yaml"
        policy.write_text(self.policy)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("KOBOT_")}
        return {
            **clean,
            "PYTHONPATH": str(REPO),
            "KOBOT_DATA_DIR": str(self.data_dir),
            "KOBOT_HTTP_HOST": LOOPBACK,
            "KOBOT_HTTP_PORT": str(self.port),
            "KOBOT_POLICY_FILE": str(policy),
            "KOBOT_PLAYBOOKS_DIR": str(FIXTURE_PLAYBOOKS),
            "KOBOT_PLUGINS": json.dumps([FIXTURE_PLUGIN]),
            "KOBOT_SLACK__BOT_TOKEN": self.peer.bot_token,
            "KOBOT_SLACK__SIGNING_SECRET": self.signing_secret,
            "KOBOT_SLACK__API_BASE_URL": self.peer.api_url,
            "KOBOT_PROGRESS_EDIT_INTERVAL": "0",
            "KOBOT_JOB_LEASE_SECONDS": "2",
            **self.env_extra,
        }

    def start(self, *args: str, log_name: str) -> subprocess.Popen[bytes]:
        log = (self.tmp_path / log_name).open("ab")
        self._logs.append(log)
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", *args],
            cwd=REPO,
            env=self.env(),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        self.started.append(process)
        return process

    def log(self, log_name: str) -> str:
        path = self.tmp_path / log_name
        return path.read_text(errors="replace") if path.exists() else ""

    def healthy(self) -> bool:
        try:
            return httpx.get(f"http://{LOOPBACK}:{self.port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def mention(self, text: str) -> None:
        """Alice mentions kobot in #ops, signed as Slack signs it."""
        body = json.dumps(event_callback(mention_event(text=f"<@U0KOBOT> {text}"))).encode()
        headers = {
            "Content-Type": "application/json",
            **signed_headers(signing_secret=self.signing_secret, body=body),
        }
        response = httpx.post(
            f"http://{LOOPBACK}:{self.port}{EVENTS_PATH}", content=body, headers=headers, timeout=10
        )
        assert response.status_code == 200, response.text

    def click(self, label: str, *, user: str) -> None:
        """`user` clicks the button labelled `label` on the latest card kobot posted with one."""
        for message in reversed(self.peer.posted()):
            blocks = message.edits[-1].get("blocks", []) if message.edits else message.blocks
            for block in blocks:
                for element in block.get("elements", []):
                    if element.get("type") == "button" and element.get("text", {}).get("text") == label:
                        payload = block_actions(
                            action_id=element["action_id"],
                            value=element["value"],
                            message_ts=message.ts,
                            user=user,
                        )
                        self._post_form(interactive_body(payload))
                        return
        raise AssertionError(f"no {label} button in what kobot posted")

    def _post_form(self, body: bytes) -> None:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **signed_headers(signing_secret=self.signing_secret, body=body),
        }
        response = httpx.post(
            f"http://{LOOPBACK}:{self.port}{EVENTS_PATH}", content=body, headers=headers, timeout=10
        )
        assert response.status_code == 200, response.text

    def said(self, needle: str) -> bool:
        """Whether any message kobot posted, or its latest edit, shows `needle`."""
        for message in self.peer.posted():
            latest = message.edits[-1] if message.edits else {"text": message.text, "blocks": message.blocks}
            if needle in json.dumps(latest):
                return True
        return False

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
        kill_processes_mentioning(str(self.data_dir))
        for log in self._logs:
            log.close()


def kill_session(session_id: int) -> None:
    """SIGKILL every process of a session (a worker, its horse in its own group, and their children)."""
    for pid in _pids():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getsid(pid) == session_id:
                os.kill(pid, signal.SIGKILL)


def processes_mentioning(text: str) -> list[int]:
    """Pids (not this test's) whose command line mentions `text`, e.g. a data dir."""
    found = []
    for pid in _pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(pid)
    return found


def kill_processes_mentioning(text: str) -> None:
    for pid in processes_mentioning(text):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_exit(process: subprocess.Popen[bytes], *, timeout: float = STOP_TIMEOUT_SECONDS) -> float:
    """Seconds until `process` exited (AssertionError past `timeout`)."""
    started = time.monotonic()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"kobot (pid {process.pid}) did not exit within {timeout}s") from None
    return time.monotonic() - started


def _pids() -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            yield int(entry.name)
