"""kobot as deployed (`create_app` with a policy file) next to the real Alertmanager and the Slack peer.

Clicks go the way a user's do: a signed Slack interaction through Bolt, the adapter and the dispatcher.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from redis import Redis

from bot.chat.slack.defaults import EVENTS_PATH
from bot.runtime import Runtime
from kobot.audit import AuditEntry
from kobot.settings_alerts import AlertsSettings, RouteTarget
from tests.peers.slack import PeerMessage, SlackPeer, block_actions, interactive_body, signed_headers
from tests.support.alertmanager import Alertmanager, run_alertmanager
from tests.support.asgi import serve
from tests.support.slack import settings_for

OPS = RouteTarget(platform="slack", conversation_id="C0OPS")


@dataclass
class Deployed:
    url: str
    am: Alertmanager
    peer: SlackPeer
    runtime: Runtime
    signing_secret: str
    redis: Redis

    def click(self, *, action_id: str, value: str, message_ts: str, user: str = "U0BOB") -> None:
        payload = block_actions(action_id=action_id, value=value, message_ts=message_ts, user=user)
        body = interactive_body(payload)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **signed_headers(signing_secret=self.signing_secret, body=body),
        }
        response = httpx.post(f"{self.url}{EVENTS_PATH}", content=body, headers=headers, timeout=10)
        assert response.status_code == 200, response.text

    def audit(self) -> list[AuditEntry]:
        return [
            AuditEntry.model_validate_json(fields[b"e"]) for _, fields in self.redis.xrange("kobot:audit")
        ]

    def texts(self) -> list[str]:
        return [shown(message) for message in self.peer.posted()]


def buttons(message: PeerMessage) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for block in message.blocks:
        for element in block.get("elements", []):
            if element.get("type") == "button":
                found[element["text"]["text"]] = element
    return found


def shown(message: PeerMessage) -> str:
    """What the channel shows now: the last edit, or the original post."""
    latest = message.edits[-1] if message.edits else {"text": message.text, "blocks": message.blocks}
    return json.dumps(latest, ensure_ascii=False)


@contextlib.contextmanager
def deployed(
    *,
    peer: SlackPeer,
    redis_url: str,
    data_dir: Path,
    work_dir: Path,
    policy: str,
    alerts: AlertsSettings | None = None,
    group_by: tuple[str, ...] = ("alertname", "cluster"),
) -> Iterator[Deployed]:
    from bot.app import create_app
    from kobot.settings import Settings

    signing_secret = secrets.token_hex(16)
    token = secrets.token_urlsafe(24)
    policy_file = work_dir / "policy.yaml"
    policy_file.write_text(policy)
    alert_settings = (alerts or AlertsSettings()).model_copy(
        update={"webhook_bearer_token": SecretStr(token), "default_targets": [OPS]}
    )
    settings = Settings(
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        policy_file=policy_file,
        in_process_worker=False,
        slack=settings_for(peer, signing_secret),
        alerts=alert_settings,
    )
    app = create_app(settings)
    client = Redis.from_url(redis_url)
    try:
        with (
            serve(app) as url,
            run_alertmanager(
                webhook_url=f"{url}/alerts/alertmanager",
                token=token,
                work_dir=work_dir / "am",
                group_by=group_by,
            ) as am,
        ):
            yield Deployed(
                url=url,
                am=am,
                peer=peer,
                runtime=app.state.runtime,
                signing_secret=signing_secret,
                redis=client,
            )
    finally:
        client.close()
