"""Bodies over a limit are refused while streaming, whether or not the sender declared a length."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request, Response

from kobot.http_body import read_capped

LIMIT = 1024


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/in")
    async def take(request: Request) -> Response:
        body = await read_capped(request, limit=LIMIT)
        if body is None:
            return Response(status_code=413)
        again = await request.body()  # a later reader (like Bolt) still gets the body
        return Response(content=str(len(again)), status_code=200 if again == body else 500)

    return app


async def _chunks(total: int) -> AsyncIterator[bytes]:
    for _ in range(total // 256):
        yield b"x" * 256


async def test_declared_and_streamed_bodies_are_capped() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t") as client:
        assert (await client.post("/in", content=b"x" * 100)).text == "100"
        assert (await client.post("/in", content=b"x" * (LIMIT + 1))).status_code == 413
        assert (await client.post("/in", content=_chunks(LIMIT * 64))).status_code == 413
        small = await client.post("/in", content=_chunks(512))
        assert small.status_code == 200 and small.text == "512"
