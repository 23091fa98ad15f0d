"""People's names from WeCom's contacts API, so audits, approvals and replies name people, not userids.

Callbacks carry only the userid. `user/get` answers with the member's `name` when the app may read that
member (its visible range); otherwise (errcode 60011 no permission, 60111 unknown userid, or WeCom not
answering) the userid stands in. Answers are cached in Redis, misses for a shorter time.
"""

from __future__ import annotations

import asyncio
import logging

from bot.chat.wecom.client import WeComApi
from bot.chat.wecom.state import WeComState
from kobot.errors import DeliveryError

log = logging.getLogger(__name__)

NAME_MAX_CHARS = 64
"""WeCom member names are at most 64 characters; anything longer is not a name kobot shows."""


class Contacts:
    """Resolves userids to display names through `user/get`, cached."""

    def __init__(self, *, api: WeComApi, state: WeComState) -> None:
        self.api = api
        self.state = state
        self._asking: dict[str, asyncio.Future[str]] = {}

    async def display_name(self, user_id: str) -> str:
        """The member's name, or the userid when WeCom will not say."""
        cached = self.state.display_name(user_id=user_id)
        if cached is not None:
            return cached or user_id
        asking = self._asking.get(user_id)
        if asking is None:  # several messages from one person at once: one question to WeCom
            asking = asyncio.ensure_future(self._ask(user_id))
            self._asking[user_id] = asking
            asking.add_done_callback(lambda _: self._asking.pop(user_id, None))
        return await asyncio.shield(asking)

    async def _ask(self, user_id: str) -> str:
        client = self.api.client
        try:
            # a name is not worth making the sender wait through rate-limit pauses
            answer = await self.api.call(lambda: client.user.get(user_id), what="a contact", pauses=())
        except DeliveryError as exc:
            log.info("wecom name of a user not read (%s); showing the userid", exc.user_message)
            self.state.remember_display_name(user_id=user_id, name="")
            return user_id
        name = " ".join(str(answer.get("name") or "").split())
        if len(name) > NAME_MAX_CHARS:
            name = ""
        self.state.remember_display_name(user_id=user_id, name=name)
        return name or user_id
