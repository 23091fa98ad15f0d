"""kobot's WeCom settings pointing at a running `WeComPeer`."""

from __future__ import annotations

from pydantic import SecretStr

from kobot.settings_wecom import WeComSettings
from tests.peers.wecom import WeComPeer


def settings_for(peer: WeComPeer, **overrides: object) -> WeComSettings:
    values: dict[str, object] = {
        "corp_id": peer.corp_id,
        "agent_id": peer.agent_id,
        "secret": SecretStr(peer.secret),
        "token": SecretStr(peer.token),
        "encoding_aes_key": SecretStr(peer.encoding_aes_key),
        "smart_bot_token": SecretStr(peer.smart_bot_token),
        "smart_bot_encoding_aes_key": SecretStr(peer.smart_bot_aes_key),
        "robot_webhook_key": SecretStr(peer.robot_key),
        "api_base_url": peer.base_url,
    }
    return WeComSettings.model_validate({**values, **overrides})
