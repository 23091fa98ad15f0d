"""Imports every platform adapter module so each registers its factory. Add a platform here."""

from __future__ import annotations

from bot.chat.dingtalk import adapter as dingtalk_adapter  # noqa: F401
from bot.chat.slack import adapter as slack_adapter  # noqa: F401
from bot.chat.wecom import adapter as wecom_adapter  # noqa: F401
