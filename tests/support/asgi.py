"""An ASGI app served for real: uvicorn on a loopback socket in a thread, so clients use HTTP; or, where no
socket is needed, called in-process with its lifespan running."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import httpx
import uvicorn
from fastapi import FastAPI

from tests.support.network import LOOPBACK
from tests.support.waiting import wait_for

STOP_SECONDS = 15.0
"""Longest the server thread gets to finish its lifespan shutdown."""


@contextlib.contextmanager
def serve(app: FastAPI, *, port: int = 0) -> Iterator[str]:
    """Run `app` (lifespan included) under uvicorn on a loopback port (`port`, else a free one) in a
    thread; yields its URL. A fixed port is for settings that must name kobot's URL before it starts."""
    sock = socket.socket()
    sock.bind((LOOPBACK, port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, what="uvicorn start")
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STOP_SECONDS)
        sock.close()


@contextlib.asynccontextmanager
async def in_process(app: FastAPI, *, raise_app_exceptions: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """`app` with its lifespan (start-up and shutdown) running, and a client that calls it in-process."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://kobot.test") as client,
    ):
        yield client
