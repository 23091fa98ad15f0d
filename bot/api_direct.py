"""Chat callbacks answered at the app's ASGI entry, ahead of FastAPI's middleware and route matching.

A chat platform's callback (Slack's events: nearly all of kobot's HTTP traffic) passes five middleware
layers and a scan of every route before its endpoint runs, about 0.15 ms a request, more than its own
signature check. The app still holds these routes (the OpenAPI schema, the golden file and `app.routes`
are unchanged); only the way a request reaches the endpoint is shorter.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from functools import cached_property
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
    websocket_request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError, WebSocketRequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]

FASTAPI_DEFAULT_HANDLERS: dict[Any, Any] = {
    HTTPException: http_exception_handler,
    RequestValidationError: request_validation_exception_handler,
    WebSocketRequestValidationError: websocket_request_validation_exception_handler,
}
"""The exception handlers every FastAPI app starts with."""


class DirectCallbacksApp(FastAPI):
    """FastAPI, answering the routes given to `answer_directly` without passing its middleware.

    Contract of such a route: a plain Starlette `Route` (no dependencies, no path parameters) whose async
    endpoint answers every outcome with a response. An `HTTPException` it raises is answered as FastAPI's
    default handler answers it; any other exception is answered 500 and re-raised for the server to log,
    as FastAPI's outermost middleware does.

    Whatever the app is given beyond FastAPI's defaults applies to every request, so while it has any
    (a middleware, a body size limit, an exception handler of its own) nothing is answered directly: a
    limit or a check added later can never silently miss the callbacks."""

    @cached_property
    def _direct(self) -> dict[tuple[str, str], Endpoint]:
        """(method, path) → the endpoint answering it at the entry."""
        return {}

    @property
    def direct_paths(self) -> frozenset[str]:
        """The paths answered at the entry (uvicorn's access filter keeps their accepted lines out)."""
        return frozenset(path for _, path in self._direct)

    def include_callbacks(self, router: APIRouter) -> None:
        """Mount a chat adapter's router and answer its callback routes at the entry: how `create_app`
        mounts every adapter, and how the adapters' tests mount theirs."""
        self.include_router(router)
        self.answer_directly(router.routes)

    def _only_defaults(self) -> bool:
        return (
            not self.user_middleware
            and getattr(self, "max_body_size", None) is None
            # FastAPI's own handlers, each for its own exception: any other, given to the constructor or
            # added later (a replaced HTTPException handler too), takes the direct path away
            and self.exception_handlers.items() <= FASTAPI_DEFAULT_HANDLERS.items()
        )

    def answer_directly(self, routes: Iterable[BaseRoute]) -> None:
        """Answer these routes at the entry; any route outside the contract above stays with FastAPI."""
        for route in routes:
            if type(route) is not Route or route.param_convertors or not route.methods:
                continue
            if not inspect.iscoroutinefunction(route.endpoint):
                continue
            for method in route.methods:
                self._direct[(method, route.path)] = route.endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self._direct
            and scope["type"] == "http"
            and not scope.get("root_path")
            and not self.root_path
            and self._only_defaults()
        ):
            endpoint = self._direct.get((scope["method"], scope["path"]))
            if endpoint is not None:
                scope["app"] = self
                await _answer(endpoint, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def _answer(endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        response = await endpoint(Request(scope, receive, send))
    except HTTPException as refused:
        # as FastAPI's default handler answers it
        await JSONResponse(
            {"detail": refused.detail}, status_code=refused.status_code, headers=refused.headers
        )(scope, receive, send)
        return
    except Exception:
        await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
        raise
    await response(scope, receive, send)


ACCESS_LOGGER = "uvicorn.access"
"""The logger uvicorn writes one line per request to."""


class QuietAcceptedCallbacks(logging.Filter):
    """Drops uvicorn's access line of a chat callback answered 200: at Slack's event rates, writing those
    lines took about a twelfth of `kobot serve`'s CPU, and each command is in the audit trail anyway.
    A callback refused (forged, replayed, malformed: 4xx) or failed (5xx) is still logged."""

    def __init__(self, paths: frozenset[str]) -> None:
        super().__init__()
        self._paths = paths

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn's arguments: client address, method, path with query, HTTP version, status code
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and args[4] == 200:
            return args[2] not in self._paths
        return True
