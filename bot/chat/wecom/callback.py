"""Callback verification: signature, freshness and replay checks before anything is decrypted or acted on.

wechatpy checks the signature (SHA1 over token, timestamp, nonce and ciphertext) and the receive id
inside the plaintext; it checks no timestamp. Here a callback must also be inside the time window and
carry a nonce not seen before on its endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable

from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import WeChatException

from bot.chat.wecom import defaults
from bot.chat.wecom.state import WeComState

log = logging.getLogger(__name__)


class CallbackRefused(Exception):
    """The callback is not answered with success; `status` is the HTTP status to send back."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class CallbackGuard:
    """Opens callbacks for one endpoint (the app callback or the smart bot) with its own token and key."""

    def __init__(
        self,
        *,
        crypto: WeChatCrypto,
        state: WeComState,
        endpoint: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.crypto = crypto
        self.state = state
        self.endpoint = endpoint
        self.clock = clock

    def echo(self, *, signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """URL verification: the decrypted echostr, for a signed and fresh request only."""
        self._signed(signature, timestamp, nonce, echostr)
        try:
            plain: str = self.crypto.check_signature(signature, timestamp, nonce, echostr)
        except WeChatException:
            raise CallbackRefused(403, "bad signature") from None
        except Exception:
            raise CallbackRefused(400, "echostr does not decrypt") from None
        self._fresh(timestamp)
        return plain

    def open(self, *, signature: str, timestamp: str, nonce: str, encrypted: str) -> str:
        """The plaintext of a signed, fresh, first-seen callback."""
        self._signed(signature, timestamp, nonce, encrypted)
        try:
            plain: str = self.crypto.decrypt_message({"Encrypt": encrypted}, signature, timestamp, nonce)
        except WeChatException:
            raise CallbackRefused(403, "bad signature or receive id") from None
        except Exception:
            raise CallbackRefused(400, "body does not decrypt") from None
        self._fresh(timestamp)
        if not self.state.first_nonce(endpoint=self.endpoint, nonce=nonce, timestamp=timestamp):
            raise CallbackRefused(403, "replayed request")
        return plain

    def _signed(self, signature: str, timestamp: str, nonce: str, payload: str) -> None:
        """WeCom's msg_signature, checked in constant time (wechatpy compares with `!=`)."""
        parts = sorted([self.crypto.token, timestamp, nonce, payload])
        # SHA1 is what WeCom's protocol defines for msg_signature; kobot cannot choose another hash
        expected = hashlib.sha1("".join(parts).encode()).hexdigest()  # nosec B324
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise CallbackRefused(403, "bad signature")

    def _fresh(self, timestamp: str) -> None:
        try:
            sent = int(timestamp)
        except ValueError:
            raise CallbackRefused(400, "timestamp is not a number") from None
        if abs(self.clock() - sent) > defaults.CALLBACK_WINDOW_SECONDS:
            raise CallbackRefused(403, "stale timestamp")
