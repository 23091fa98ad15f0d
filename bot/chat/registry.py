"""Explicit registry of chat adapter factories. Each platform registers one; `build_adapters` asks each.

A factory returns None when its platform is not configured, so a platform is enabled by its settings alone.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from kobot.chat import ChatAdapter

if TYPE_CHECKING:
    from bot.runtime import Runtime

AdapterFactory = Callable[["Runtime"], ChatAdapter | None]

ADAPTER_FACTORIES: dict[str, AdapterFactory] = {}


def register_adapter(platform: str) -> Callable[[AdapterFactory], AdapterFactory]:
    def decorate(factory: AdapterFactory) -> AdapterFactory:
        ADAPTER_FACTORIES[platform] = factory
        return factory

    return decorate


def build_adapters(runtime: Runtime) -> dict[str, ChatAdapter]:
    """Adapters for every configured platform (each configured platform's module is imported to register)."""
    from bot.chat.platforms import PLATFORM_MODULES

    for platform, module in PLATFORM_MODULES.items():
        if getattr(runtime.settings, platform, None) is not None:
            importlib.import_module(module)
    adapters: dict[str, ChatAdapter] = {}
    for platform, factory in ADAPTER_FACTORIES.items():
        adapter = factory(runtime)
        if adapter is not None:
            adapters[platform] = adapter
    return adapters
