"""kobot served over HTTP with its Slack adapter pointed at a `SlackPeer`: a test says a line as a Slack
user would (a signed Events API callback) and reads what kobot posted in that line's thread."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from bot.app import create_app
from bot.chat.slack.defaults import EVENTS_PATH
from kobot.settings import Settings
from tests.peers.slack import PeerMessage, SlackPeer, event_callback, mention_event, signed_headers
from tests.support.asgi import serve
from tests.support.network import free_port
from tests.support.slack import settings_for
from tests.support.waiting import wait_for

USER = "U0ALICE"
CHANNEL = "C0OPS"
EVENT_TIMEOUT_SECONDS = 10.0
"""Upper bound of kobot's answer to one Events API callback (it acks before any work)."""
OPERATOR_POLICY = f"""
version: 1
bindings:
  - role: operator
    subjects: ["slack:{USER}"]
"""
"""The Slack user holds the built-in operator role: every command but a few, risky ones after approval."""


@dataclass
class SlackKobot:
    url: str
    slack: SlackPeer
    signing_secret: str

    def say(self, text: str) -> dict[str, Any]:
        event = mention_event(text=f"<@U0KOBOT> {text}", user=USER, channel=CHANNEL)
        body = json.dumps(event_callback(event)).encode()
        headers = {
            "Content-Type": "application/json",
            **signed_headers(signing_secret=self.signing_secret, body=body),
        }
        response = httpx.post(
            f"{self.url}{EVENTS_PATH}", content=body, headers=headers, timeout=EVENT_TIMEOUT_SECONDS
        )
        assert response.status_code == 200, response.text
        return event

    def thread(self, event: dict[str, Any]) -> list[PeerMessage]:
        return [m for m in self.slack.posted() if m.thread_ts == event["ts"]]

    def final(self, event: dict[str, Any], *, timeout: float) -> str:
        """The thread's job message once its job has ended, as last edited."""

        def ended() -> list[str]:
            return [text for text in map(shown, self.thread(event)) if any(word in text for word in ENDED)]

        try:
            [text] = wait_for(ended, timeout=timeout, what="the job's final message")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the thread: {[shown(m) for m in self.thread(event)]}") from None
        return text


ENDED = ("succeeded in", "failed at", "failed after", "cancelled")
"""What a job's message says once the job has ended (commands.job_card)."""


def shown(message: PeerMessage) -> str:
    """The message as it stands (its last edit), as JSON text with its blocks."""
    latest = message.edits[-1] if message.edits else {"text": message.text, "blocks": message.blocks}
    return json.dumps(latest, ensure_ascii=False)


@contextmanager
def slack_kobot(*, data_dir: Path, redis_url: str, **settings: Any) -> Iterator[SlackKobot]:
    """kobot with its in-process worker, the operator policy and `settings`, behind a Slack peer."""
    signing_secret = secrets.token_hex(16)
    policy = data_dir / "policy.yaml"
    policy.write_text(OPERATOR_POLICY)
    with SlackPeer(bot_token=f"xoxb-{secrets.token_hex(12)}") as slack:
        configured = Settings(
            policy_file=policy,
            redis_url=SecretStr(redis_url),
            data_dir=data_dir,
            slack=settings_for(slack, signing_secret),
            progress_edit_interval=0,
            **settings,
        )
        with serve(create_app(configured), port=free_port()) as url:
            yield SlackKobot(url=url, slack=slack, signing_secret=signing_secret)
