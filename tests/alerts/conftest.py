"""Alert test fixtures: kobot's receiver under uvicorn, the real Alertmanager, and a recording chat.

The order matters: kobot's server starts first (Alertmanager's config names its port), then
Alertmanager with `group_wait: 1s` and a webhook receiver pointing at kobot with a bearer token.
What the fixtures are built from lives in tests/support/ (alerts_server, alertmanager) and
tests/peers/recorder.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from kobot.chat import ChatAdapter
from kobot.settings_alerts import AlertsSettings
from tests.peers.recorder import PLATFORM, ChatRecorder, RecorderAdapter, start_recorder
from tests.peers.slack import SlackPeer
from tests.support.alertmanager import Alertmanager, run_alertmanager
from tests.support.alerts_server import OPS, KobotServer, run_kobot


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    """The local Slack Web API peer the alert tests deliver to through the real Slack SDK."""
    with SlackPeer(bot_token=f"xoxb-{secrets.token_hex(12)}") as running:
        yield running


@pytest.fixture
def recorder() -> Iterator[ChatRecorder]:
    with start_recorder() as rec:
        yield rec


@pytest.fixture
def kobot(redis_url: str, recorder: ChatRecorder, data_dir: Path) -> Iterator[KobotServer]:
    """Default routes: everything to the recorder's `ops` conversation (4,096-byte messages, like WeCom)."""
    adapters: dict[str, ChatAdapter] = {PLATFORM: RecorderAdapter(url=recorder.url, max_message_bytes=4096)}
    settings = AlertsSettings(default_targets=[OPS])
    with run_kobot(redis_url=redis_url, adapters=adapters, alerts=settings, data_dir=data_dir) as server:
        yield server


@pytest.fixture
def alertmanager(kobot: KobotServer, tmp_path: Path) -> Iterator[Alertmanager]:
    with run_alertmanager(
        webhook_url=f"{kobot.url}/alerts/alertmanager", token=kobot.token, work_dir=tmp_path / "am"
    ) as am:
        yield am
