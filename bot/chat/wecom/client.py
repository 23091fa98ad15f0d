"""wechatpy's enterprise client pointed at a configurable base URL, with the token kept in Redis.

wechatpy is synchronous, so every call runs in a thread (`WeComApi.call`) and the event loop never
blocks. wechatpy's own token retry recurses without bound; it is turned off here and replaced by one
refresh-and-retry on the token errcodes. WeCom says "too often" with errcodes, not HTTP 429: such a call
is tried again after each of `RATE_LIMIT_PAUSES_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from redis import Redis
from wechatpy.enterprise import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session.redisstorage import RedisStorage

from bot.chat.wecom import defaults
from kobot.errors import DeliveryError
from kobot.settings_wecom import WeComSettings

log = logging.getLogger(__name__)

QUERY_SECRET = re.compile(r"\b(corpsecret|access_token|key)=[^&\s\"']+")
"""WeCom puts the app secret, the access token and robot keys in query strings, which urllib3 logs."""


class RedactQuerySecrets(logging.Filter):
    """Masks query-string credentials in urllib3's request log lines (DEBUG) before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        redacted = QUERY_SECRET.sub(r"\1=***", text)
        if redacted != text:
            record.msg, record.args = redacted, None
        return True


logging.getLogger("urllib3.connectionpool").addFilter(RedactQuerySecrets())


class KobotWeChatClient(WeChatClient):  # type: ignore[misc]
    """WeChatClient whose every URL, gettoken included, starts at the configured `API_BASE_URL`."""

    def __init__(self, *, settings: WeComSettings, redis: Redis) -> None:
        super().__init__(
            settings.corp_id,
            settings.secret.get_secret_value(),
            session=RedisStorage(redis, prefix=f"{defaults.REDIS_PREFIX}:session"),
            timeout=defaults.API_TIMEOUT_SECONDS,
            auto_retry=False,
        )
        self.API_BASE_URL = settings.api_base_url
        self._agent_id = settings.agent_id

    @property
    def access_token_key(self) -> str:
        """Keyed by corp and agent: wechatpy's default key embeds part of the secret."""
        return f"{self.corp_id}_{self._agent_id}_access_token"

    def fetch_access_token(self) -> dict[str, Any]:
        result: dict[str, Any] = self._fetch_access_token(
            url=self.API_BASE_URL + "gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
        )
        return result

    def forget_access_token(self) -> None:
        self.session.delete(self.access_token_key)
        self.expires_at = None


Sleep = Callable[[float], Awaitable[None]]
"""How the adapter waits (tests pass one that moves a test clock instead)."""


class WeComApi:
    """Async face of the client: one call in a thread, one token refresh, rate-limit pauses, errors as
    DeliveryError."""

    def __init__(self, *, client: KobotWeChatClient, sleep: Sleep = asyncio.sleep) -> None:
        self.client = client
        self.sleep = sleep

    async def call(
        self,
        fn: Callable[[], dict[str, Any]],
        *,
        what: str,
        pauses: tuple[float, ...] = defaults.RATE_LIMIT_PAUSES_SECONDS,
    ) -> dict[str, Any]:
        """Run `fn` (a wechatpy call) in a thread; a token errcode refreshes the token and retries once, a
        rate errcode waits each of `pauses` and tries again."""
        remaining = list(pauses)
        while True:
            try:
                return await self._call_once(fn, what=what)
            except _RateLimited as limited:
                if not remaining:
                    raise _delivery_error(limited.exc, what=what) from None
                pause = remaining.pop(0)
                log.info(
                    "wecom limited %s (errcode %s); trying again in %.0fs", what, limited.exc.errcode, pause
                )
                await self.sleep(pause)

    async def _call_once(self, fn: Callable[[], dict[str, Any]], *, what: str) -> dict[str, Any]:
        try:
            return await asyncio.to_thread(_guarded, fn)
        except WeChatClientException as exc:
            if exc.errcode in defaults.RATE_LIMIT_ERRCODES:
                raise _RateLimited(exc) from None
            if exc.errcode not in defaults.TOKEN_REFRESH_ERRCODES:
                raise _delivery_error(exc, what=what) from None
            log.info("wecom access token refused (errcode %s); fetching a new one", exc.errcode)
        try:
            await asyncio.to_thread(_guarded, self._refresh)
            return await asyncio.to_thread(_guarded, fn)
        except WeChatClientException as again:
            if again.errcode in defaults.RATE_LIMIT_ERRCODES:
                raise _RateLimited(again) from None
            raise _delivery_error(again, what=what) from None

    def _refresh(self) -> dict[str, Any]:
        self.client.forget_access_token()
        return self.client.fetch_access_token()


class _RateLimited(Exception):
    def __init__(self, exc: WeChatClientException) -> None:
        super().__init__(exc.errcode)
        self.exc = exc


def _guarded(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Connection failures (requests raises OSErrors) become WeChatClientException without an errcode."""
    try:
        return fn()
    except WeChatClientException:
        raise
    except OSError as exc:
        raise WeChatClientException(None, type(exc).__name__) from exc


def _delivery_error(exc: WeChatClientException, *, what: str) -> DeliveryError:
    code = exc.errcode
    if code in defaults.RATE_LIMIT_ERRCODES:
        return DeliveryError(
            f"WeCom limited {what}; retrying later", retry_after=defaults.RATE_LIMIT_RETRY_SECONDS
        )
    if code is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        reason = f"HTTP {status}" if status else str(exc.errmsg or "no answer")
        return DeliveryError(f"WeCom did not take {what} ({reason})")
    if code == defaults.INVALID_RECIPIENTS_ERRCODE:
        return WeComRefused(
            f"WeCom did not take {what}: no recipient is in the app's visible range (errcode {code})",
            errcode=code,
        )
    log.warning("wecom refused %s: errcode %s", what, code)
    return WeComRefused(f"WeCom refused {what} (errcode {code})", errcode=code)


class WeComRefused(DeliveryError):
    """WeCom answered a call with a refusal: `errcode` says which."""

    def __init__(self, user_message: str, *, errcode: int) -> None:
        super().__init__(user_message)
        self.errcode = errcode
