"""DingTalk's Open API and webhooks over aiohttp: access token cache, JSON calls, refusals as DeliveryError.

The SDK's own send helpers use blocking `requests` and swallow failures (they log and return ""),
which would lose messages and stall the event loop; kobot calls the same endpoints itself.
aiohttp rather than httpx because httpx logs every request URL at INFO, and webhook URLs carry tokens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import SecretStr

from bot.chat.dingtalk import defaults
from kobot.errors import DeliveryError

log = logging.getLogger(__name__)

TOKEN_HEADER = "x-acs-dingtalk-access-token"  # nosec B105  # a header name, not a token


class OpenApiClient:
    """One app's Open API client. Create and use it on one event loop; `close()` when done."""

    def __init__(self, *, endpoint: str, client_id: str, client_secret: SecretStr) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()
        self.token_fetches = 0
        """How often a token was fetched (the cache is working when this stays small)."""

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=defaults.HTTP_TIMEOUT_SECONDS)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def access_token(self) -> str:
        """A valid access token, fetched when missing or about to expire."""
        async with self._token_lock:
            if self._token is not None and time.monotonic() < self._token_expires:
                return self._token
            body = {"appKey": self._client_id, "appSecret": self._client_secret.get_secret_value()}
            answer = await self._request("POST", f"{self._endpoint}/v1.0/oauth2/accessToken", body=body)
            token = answer.data.get("accessToken")
            if answer.status != 200 or not isinstance(token, str):
                raise DeliveryError(
                    "DingTalk did not issue an access token", retry_after=answer.retry_after()
                )
            expires_in = float(answer.data.get("expireIn", 7200))
            self._token = token
            self._token_expires = time.monotonic() + max(
                expires_in - defaults.ACCESS_TOKEN_MARGIN_SECONDS, 1.0
            )
            self.token_fetches += 1
            return token

    def forget_token(self, token: str) -> None:
        if self._token == token:
            self._token = None

    async def call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """An authenticated Open API call; a token DingTalk calls invalid is refreshed once.

        DingTalk refuses a bad or expired token with HTTP 400 and code `InvalidAuthentication`
        (not 401), so the code decides; a 401 is taken the same way. A 403 with a QpsLimit code is
        a rate limit (retry soon), any other 403 a refusal that will not change.
        """
        for attempt in (1, 2):
            token = await self.access_token()
            answer = await self._request(
                method, f"{self._endpoint}{path}", body=body, headers={TOKEN_HEADER: token}
            )
            code = str(answer.data.get("code") or "")
            if (answer.status == 401 or code in defaults.INVALID_TOKEN_CODES) and attempt == 1:
                log.info("dingtalk access token refused (%s), fetching a new one", code or answer.status)
                self.forget_token(token)
                continue
            if 200 <= answer.status < 300:
                return answer.data
            retry_after = answer.retry_after()
            if code.startswith(defaults.RATE_LIMIT_CODE_PREFIX):
                retry_after = max(retry_after or 0.0, defaults.RATE_LIMIT_RETRY_SECONDS)
            raise OpenApiRefused(
                f"DingTalk refused {path}: HTTP {answer.status} {code}".strip(),
                status=answer.status,
                code=code,
                retry_after=retry_after,
            )
        raise DeliveryError(f"DingTalk refused {path}: access token not accepted")

    async def post_webhook(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to a session or robot webhook; success is errcode 0. The URL is a secret: never logged."""
        answer = await self._request("POST", url, body=body)
        data = answer.data
        errcode = data.get("errcode")
        if answer.status == 200 and errcode in (0, None):
            return data
        if answer.status != 200:
            raise DeliveryError(
                f"DingTalk webhook answered HTTP {answer.status}", retry_after=answer.retry_after()
            )
        busy = errcode in defaults.ERRCODE_BUSY
        raise WebhookRefused(
            f"DingTalk webhook refused the message: errcode {errcode} {data.get('errmsg', '')}".strip(),
            errcode=int(errcode) if isinstance(errcode, int) else -1,
            retry_after=1.0 if busy else None,
        )

    async def _request(
        self, method: str, url: str, *, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> _Answer:
        try:
            # UTF-8 JSON, not \u escapes: DingTalk's byte limits count what is sent, and CJK text
            # escaped takes twice the room.
            payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            sent_headers = {"Content-Type": "application/json; charset=utf-8"} | (headers or {})
            async with self._http().request(method, url, data=payload, headers=sent_headers) as response:
                try:
                    data = await response.json(content_type=None)
                except ValueError:
                    data = None
                return _Answer(
                    status=response.status,
                    data=data if isinstance(data, dict) else {},
                    retry_after_header=response.headers.get("Retry-After"),
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            # The exception text can hold the URL (and its token); only its type is safe to show.
            raise DeliveryError(
                f"DingTalk could not be reached ({type(exc).__name__})", retry_after=1.0
            ) from None


class OpenApiRefused(DeliveryError):
    """An Open API call DingTalk answered with a refusal: `status` and `code` say which."""

    def __init__(self, user_message: str, *, status: int, code: str, retry_after: float | None) -> None:
        super().__init__(user_message, retry_after=retry_after)
        self.status = status
        self.code = code


class WebhookRefused(DeliveryError):
    """A webhook answered with a non-zero errcode. `errcode` tells busy (130101) from invalid."""

    def __init__(self, user_message: str, *, errcode: int, retry_after: float | None) -> None:
        super().__init__(user_message, retry_after=retry_after)
        self.errcode = errcode

    @property
    def busy(self) -> bool:
        return self.errcode in defaults.ERRCODE_BUSY


@dataclass(frozen=True)
class _Answer:
    status: int
    data: dict[str, Any]
    retry_after_header: str | None

    def retry_after(self) -> float | None:
        """Seconds to wait when DingTalk said so or is overloaded; None for a refusal that will not change."""
        if self.retry_after_header is not None:
            try:
                return max(float(self.retry_after_header), 0.0)
            except ValueError:
                return 1.0
        if self.status == 429 or self.status >= 500:
            return 1.0
        return None
