"""A command as the parser understood it: plain data, passed from the parser to the dispatcher and
handlers, stored with approval requests and printed by `kobot parse`."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict

from kobot.deferred_models import DeferredModel
from kobot.risk import Risk


class ParsedCommand(DeferredModel):
    """A command as the parser understood it: what `kobot parse` prints."""

    model_config = ConfigDict(frozen=True)

    command: str
    cluster: str | None
    args: dict[str, Any]
    risk: Risk
