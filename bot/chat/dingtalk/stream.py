"""The stream-mode connection: dingtalk-stream's client in a thread with its own event loop.

The SDK's `start()` swallows cancellation and sleeps 10 s after any disconnect, so kobot keeps
the SDK's frame parsing, handler routing and acks (`route_message`) but runs its own connect loop:
connections/open with a timeout, the websocket, a reconnect with capped backoff, and a stop that
cancels the loop and closes the socket.

DingTalk pushes each bot message once: a frame that is not acked, or that arrives while no socket
is open (a reconnect, a restart), is never pushed again. Every frame is therefore acked within
milliseconds (the work goes on in the app's loop), a reconnect starts at once after a `disconnect`,
and a message that was taken but could not be handed on is answered by the adapter with a request
to send it again. Messages sent while kobot had no connection at all are gone; SETUP.md says so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote_plus

import aiohttp
from pydantic import SecretStr

from bot.chat.dingtalk import defaults
from kobot.backoff import capped_backoff

log = logging.getLogger(__name__)

FrameHandler = Callable[[str, dict[str, Any], str], Awaitable[None]]
"""(topic, data, frame message id) → None; raising acks the frame with an error status (DingTalk
still does not push it again)."""

TOPIC_CHAT = "/v1.0/im/bot/messages/get"
TOPIC_CARD = "/v1.0/card/instances/callback"


class GatewayRefused(Exception):
    """connections/open did not hand out an endpoint (bad credentials, gateway down)."""


class StreamConnection:
    """Owns the thread, its loop and the SDK client; `start()` returns once connected (or timed out)."""

    def __init__(
        self, *, endpoint: str, client_id: str, client_secret: SecretStr, handle: FrameHandler
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._handle = handle
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._websocket: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connected = threading.Event()
        self.connections = 0
        """How many times a websocket was opened (1 + reconnects)."""

    def start(self, *, timeout: float = defaults.STREAM_START_TIMEOUT_SECONDS) -> bool:
        """Start the thread; True when the first connection opened within `timeout`."""
        if self._thread is not None:
            return self.connected.is_set()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready,), name="dingtalk-stream", daemon=True
        )
        self._thread.start()
        ready.wait(timeout)
        return self.connected.wait(timeout)

    def stop(self, *, timeout: float = defaults.STREAM_STOP_TIMEOUT_SECONDS) -> None:
        """Cancel the connect loop, close the websocket and join the thread. Safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(self._cancel_everything)
            thread.join(timeout)
            if thread.is_alive():
                log.error("dingtalk stream thread did not stop within %.1fs", timeout)
        self._thread = None

    def _cancel_everything(self) -> None:
        if self._main is not None:
            self._main.cancel()
        for task in list(self._tasks):
            task.cancel()

    def _thread_main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._main = loop.create_task(self._run())
            ready.set()
            loop.run_until_complete(asyncio.gather(self._main, return_exceptions=True))
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            self.connected.clear()
            loop.close()
            self._loop = None

    async def _run(self) -> None:
        # Importing here lets the adapter set DINGTALK_OPENAPI_ENDPOINT first; websockets.exceptions
        # must be imported before the first error or the SDK turns that error into AttributeError.
        import websockets.exceptions
        from websockets.asyncio.client import connect

        client = self._sdk_client()
        client.pre_start()
        failures = 0
        while True:
            try:
                uri = await self._open_connection(topics=list(client.callback_handler_map))
                async with connect(
                    uri,
                    open_timeout=defaults.STREAM_OPEN_TIMEOUT_SECONDS,
                    ping_interval=defaults.STREAM_PING_INTERVAL_SECONDS,
                    close_timeout=1.0,
                    max_size=None,
                ) as websocket:
                    client.websocket = websocket
                    self._websocket = websocket
                    self.connections += 1
                    self.connected.set()
                    failures = 0
                    async for raw in websocket:
                        self._spawn(client.background_task(json.loads(raw)))
                log.info("dingtalk stream connection closed, reconnecting")
            except (
                OSError,
                TimeoutError,
                ValueError,
                aiohttp.ClientError,
                websockets.exceptions.WebSocketException,
                GatewayRefused,
            ) as exc:
                failures += 1
                log.warning("dingtalk stream connection failed (%s: %s)", type(exc).__name__, _safe(exc))
            finally:
                self.connected.clear()
                client.websocket = None
                self._websocket = None
            await asyncio.sleep(_backoff(failures))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open_connection(self, *, topics: list[str]) -> str:
        """POST connections/open (the SDK's request, with a timeout) → the websocket URI with its ticket."""
        body = {
            "clientId": self._client_id,
            "clientSecret": self._client_secret.get_secret_value(),
            "subscriptions": [{"type": "CALLBACK", "topic": topic} for topic in topics],
            "ua": f"kobot dingtalk-stream/{_sdk_version()}",
            "localIp": _local_ip(),
        }
        timeout = aiohttp.ClientTimeout(total=defaults.HTTP_TIMEOUT_SECONDS)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(f"{self._endpoint}/v1.0/gateway/connections/open", json=body) as response,
        ):
            data = await response.json(content_type=None) if response.status == 200 else None
            if not isinstance(data, dict) or not data.get("endpoint") or not data.get("ticket"):
                raise GatewayRefused(f"connections/open answered HTTP {response.status}")
        return f"{data['endpoint']}?ticket={quote_plus(str(data['ticket']))}"

    def _sdk_client(self) -> Any:
        import dingtalk_stream

        client = dingtalk_stream.DingTalkStreamClient(
            dingtalk_stream.Credential(self._client_id, "(not used by the stream loop)"),
            logger=logging.getLogger("dingtalk_stream.client"),
        )
        for topic in (TOPIC_CHAT, TOPIC_CARD):
            client.register_callback_handler(topic, _make_handler(topic=topic, handle=self._handle))
        return client


def _make_handler(*, topic: str, handle: FrameHandler) -> Any:
    """An SDK CallbackHandler that hands the frame to kobot and acks with an empty response."""
    import dingtalk_stream

    class KobotHandler(dingtalk_stream.CallbackHandler):  # type: ignore[misc]
        async def process(self, message: Any) -> tuple[int, dict[str, Any]]:
            data = message.data if isinstance(message.data, dict) else {}
            try:
                await handle(topic, data, str(message.headers.message_id or ""))
            except Exception:
                log.exception("dingtalk frame on %s not handled (DingTalk will not send it again)", topic)
                return dingtalk_stream.AckMessage.STATUS_SYSTEM_EXCEPTION, {}
            return dingtalk_stream.AckMessage.STATUS_OK, {}

    return KobotHandler()


def _backoff(failures: int) -> float:
    # a closed connection (no failure) waits the base; each failure in a row doubles it
    delay = capped_backoff(
        attempt=failures + 1,
        first=defaults.STREAM_BACKOFF_BASE_SECONDS,
        cap=defaults.STREAM_BACKOFF_CAP_SECONDS,
    )
    return delay * random.uniform(0.8, 1.2)  # nosec B311  # reconnect jitter, not a secret


def _local_ip() -> str:
    """This host's address for the gateway's diagnostics, found without sending a packet anywhere."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return ""


def _sdk_version() -> str:
    from dingtalk_stream.version import VERSION_STRING

    return str(VERSION_STRING)


def _safe(exc: BaseException) -> str:
    """Exception text without a query string (a ticket or token may be in a URL)."""
    return str(exc).split("?", 1)[0][:200]
