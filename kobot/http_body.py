"""Reading a request body no larger than a limit, without first holding whatever a sender streams."""

from __future__ import annotations

from fastapi import Request


async def read_capped(request: Request, *, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed `limit` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            return None
    # Starlette keeps a read body here; later readers (Bolt's request handler) get it from there.
    request._body = bytes(body)
    return request._body
