"""What every platform peer shares: a server on 127.0.0.1 with its own thread and event loop, a
thread-safe recording of what arrived, and faults queued for the next requests.

A peer subclasses `LoopbackPeer`, builds its aiohttp application in `build_app` and renders a
`Fault` in its platform's own words (Slack's `ok: false`, DingTalk's `code`, WeCom's `errcode`).
Tests use the same verbs on every peer: `start`/`stop` (or `with`), `requests`, `fail_next`, `slow`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar, overload

from aiohttp import web

T = TypeVar("T")

LOOPBACK = "127.0.0.1"

PEER_TIMEOUT_SECONDS = 10.0
"""Longest a peer waits for its own start or stop, or for work handed to its loop."""

ANY_PATH = "*"
"""The path key of a fault that applies to whichever request comes next."""


class Recording(Generic[T]):
    """What a peer received, in arrival order; safe to read from the test while the peer appends."""

    def __init__(self) -> None:
        self._items: list[T] = []
        self._lock = threading.Lock()

    def add(self, item: T) -> T:
        with self._lock:
            self._items.append(item)
        return item

    def all(self) -> list[T]:
        with self._lock:
            return list(self._items)

    def where(self, keep: Callable[[T], bool]) -> list[T]:
        return [item for item in self.all() if keep(item)]

    def __iter__(self) -> Iterator[T]:
        return iter(self.all())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        with self._lock:
            return self._items[index]


@dataclass
class Fault:
    """One injected answer: `status` 0 means answer normally, after `delay` seconds."""

    status: int = 0
    times: int = 1
    body: Any = None
    retry_after: float | None = None
    delay: float = 0.0


class Faults:
    """Faults queued per request path (or for any path), taken one request at a time, plus a delay for all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, list[Fault]] = {}
        self.delay = 0.0
        """Seconds every answer waits (a slow platform), until set back to 0."""

    def add(self, fault: Fault, *, path: str = ANY_PATH) -> None:
        with self._lock:
            self._queues.setdefault(path, []).append(fault)

    def clear(self, *, path: str = ANY_PATH) -> None:
        with self._lock:
            self._queues.pop(path, None)

    def take(self, path: str) -> Fault | None:
        """The fault for this request, if any: one queued for its path first, then one for any path."""
        with self._lock:
            for key in (path, ANY_PATH):
                queue = self._queues.get(key)
                if queue:
                    fault = queue[0]
                    fault.times -= 1
                    if fault.times <= 0:
                        queue.pop(0)
                    return fault
        return None


class LoopbackPeer:
    """An aiohttp application on a free port of 127.0.0.1, served by a loop in a thread of its own.

    The code under test talks to it over a real socket, exactly as to the platform; only the base
    URL differs. Use as a context manager (or `running()`); `port` is known once started.
    """

    thread_name = "peer"

    def __init__(self) -> None:
        self.port = 0
        self.faults = Faults()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._tls: ssl.SSLContext | None = None

    # -- what a platform module provides ------------------------------------------------------------

    def build_app(self) -> web.Application:
        raise NotImplementedError

    async def before_shutdown(self) -> None:
        """Close what the app holds open (websockets) before the runner stops."""

    def tls_context(self) -> ssl.SSLContext | None:
        """A server context to speak HTTPS (clients that send credentials only over TLS); None is HTTP."""
        return None

    # -- lifecycle ----------------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"{'https' if self._tls else 'http'}://{LOOPBACK}:{self.port}"

    def start(self) -> Self:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name=self.thread_name, daemon=True)
        self._thread.start()
        try:
            self.submit(self._serve()).result(PEER_TIMEOUT_SECONDS)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(PEER_TIMEOUT_SECONDS)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(PEER_TIMEOUT_SECONDS)
            loop.close()
            self._loop, self._thread = None, None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def running(self) -> Iterator[Self]:
        with self:
            yield self

    async def _serve(self) -> None:
        self._runner = web.AppRunner(self.build_app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        self._tls = self.tls_context()
        site = web.TCPSite(self._runner, LOOPBACK, 0, ssl_context=self._tls)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _shutdown(self) -> None:
        await self.before_shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- the peer's loop ------------------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "the peer is not running"
        return self._loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule `coro` on the peer's loop; returns its concurrent future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def on_loop(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the peer's loop (where the peer's socket state lives) and return its result."""

        async def run() -> T:
            return fn()

        return self.run_on_loop(run())

    def run_on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the peer's loop from a thread of the test, and return its result."""
        return self.submit(coro).result(PEER_TIMEOUT_SECONDS)

    async def from_test_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await, from the test's own event loop, a coroutine that must run on the peer's loop."""
        return await asyncio.wrap_future(self.submit(coro))

    # -- fault injection --------------------------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        path: str = ANY_PATH,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        """The next `count` requests (to `path`, or any) get `status`; 0 cancels those still queued."""
        if count <= 0:
            self.faults.clear(path=path)
            return
        self.faults.add(Fault(status=status, times=count, body=body, retry_after=retry_after), path=path)

    def slow(self, seconds: float, *, path: str | None = None, times: int = 1) -> None:
        """Delay answers by `seconds`: every answer, or the next `times` requests to `path`."""
        if path is None:
            self.faults.delay = seconds
        else:
            self.faults.add(Fault(delay=seconds, times=times), path=path)

    async def apply_delay(self, fault: Fault | None) -> None:
        """Wait as the platform would: the peer-wide delay, then the fault's own."""
        if self.faults.delay:
            await asyncio.sleep(self.faults.delay)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
