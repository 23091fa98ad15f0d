"""Display names for Slack user ids, from users.info, cached in Redis so each user costs one call an hour,
and kept in each process's memory for a minute so an event costs no store round trip for its sender."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict

from redis.asyncio import Redis
from redis.exceptions import RedisError
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.slack import defaults
from bot.chat.slack.inbound import Sender
from kobot.keys import PREFIX
from kobot.validation import without_surrogates

log = logging.getLogger(__name__)


def user_key(user_id: str) -> str:
    return f"{PREFIX}:slack:user:{user_id}"


class UserDirectory:
    """users.info with a Redis cache. A failed lookup falls back to the bare id and is not cached.

    Concurrent events from one user share a single lookup, so a burst costs one users.info call.
    """

    def __init__(self, *, client: AsyncWebClient, redis: Redis) -> None:
        self._client = client
        self._redis = redis
        self._in_flight: dict[str, asyncio.Task[Sender]] = {}
        # user id -> (monotonic expiry, sender); one TTL for all, so insertion order is expiry order
        self._remembered: OrderedDict[str, tuple[float, Sender]] = OrderedDict()

    async def sender(self, user_id: str) -> Sender:
        remembered = self._remembered.get(user_id)
        if remembered is not None:
            if remembered[0] > time.monotonic():
                return remembered[1]
            del self._remembered[user_id]
        task = self._in_flight.get(user_id)
        if task is None:
            task = asyncio.create_task(self._lookup(user_id))
            self._in_flight[user_id] = task
            task.add_done_callback(lambda _: self._in_flight.pop(user_id, None))
        return await asyncio.shield(task)

    def _remember(self, sender: Sender) -> Sender:
        self._remembered.pop(sender.user_id, None)
        self._remembered[sender.user_id] = (time.monotonic() + defaults.USER_MEMORY_SECONDS, sender)
        if len(self._remembered) > defaults.USER_MEMORY_MAX:
            self._remembered.popitem(last=False)
        return sender

    async def _lookup(self, user_id: str) -> Sender:
        try:
            cached = await self._redis.get(user_key(user_id))
        except RedisError:
            cached = None  # the cache is a convenience: with the store down, ask Slack
        if cached is not None:
            data = json.loads(cached)
            return self._remember(Sender(user_id=user_id, display_name=data["name"], email=data.get("email")))
        try:
            response = await asyncio.wait_for(
                self._client.users_info(user=user_id), timeout=defaults.USER_LOOKUP_TIMEOUT_SECONDS
            )
        except (SlackClientError, TimeoutError, OSError) as exc:
            log.warning("users.info for %s failed: %s", user_id, type(exc).__name__)
            return Sender(user_id=user_id)
        user = response.get("user") or {}
        profile = user.get("profile") or {}
        name = (
            profile.get("display_name")
            or user.get("real_name")
            or profile.get("real_name")
            or user.get("name")
        )
        email = without_surrogates(str(profile.get("email") or "")) or None
        sender = Sender(user_id=user_id, display_name=without_surrogates(str(name or "")), email=email)
        with contextlib.suppress(RedisError):
            await self._redis.set(
                user_key(user_id),
                json.dumps({"name": sender.display_name, "email": email}),
                ex=defaults.USER_CACHE_TTL_SECONDS,
            )
        return self._remember(sender)
