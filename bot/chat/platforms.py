"""Where each chat platform's adapter lives. Add a platform here.

A platform's module (and its SDK) is imported only when its settings are present: a kobot without
Slack never pays for loading slack-bolt.
"""

from __future__ import annotations

PLATFORM_MODULES: dict[str, str] = {
    "dingtalk": "bot.chat.dingtalk.adapter",
    "slack": "bot.chat.slack.adapter",
    "wecom": "bot.chat.wecom.adapter",
}
"""Platform name (also its settings attribute) → module that registers its adapter factory."""
