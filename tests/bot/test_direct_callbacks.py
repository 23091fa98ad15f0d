"""A chat callback route is answered at the app's entry, skipping FastAPI's middleware and route matching,
with the same answers: its endpoint's response, 405 for another method, 500 (and the exception re-raised
for the server's log) when the endpoint fails; every other route still passes FastAPI."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.routing import iter_route_contexts
from pydantic import SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from bot.api_direct import ACCESS_LOGGER, DirectCallbacksApp, QuietAcceptedCallbacks
from bot.app import create_app
from bot.chat.slack.defaults import EVENTS_PATH
from bot.runtime import build_runtime
from kobot.settings import Settings
from kobot.settings_slack import SlackSettings
from tests.support.network import LOOPBACK
from tests.workers.jobkit import FIXTURE_PLAYBOOKS

UNREACHABLE = f"http://{LOOPBACK}:9/"
"""Where Slack's API would be: the discard port, never dialled (the adapter is not started)."""
SERVER_START_SECONDS = 30.0
"""Longest uvicorn may take to listen on a busy machine."""


CallNext = Callable[[Request], Awaitable[Response]]


class _Passed:
    """Paths of the requests that went through FastAPI's middleware stack.

    The probe wraps the stack FastAPI builds instead of adding a middleware: an added middleware applies
    to every request, so the app stops answering anything directly while it has one."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def watch(self, app: DirectCallbacksApp) -> None:
        stack = app.build_middleware_stack()

        async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                self.paths.append(scope["path"])
            await stack(scope, receive, send)

        app.middleware_stack = recorded

    def middleware(self) -> Callable[[Request, CallNext], Awaitable[Response]]:
        async def record(request: Request, call_next: CallNext) -> Response:
            self.paths.append(request.url.path)
            return await call_next(request)

        return record


class _Failed(Exception):
    pass


def _app(
    passed: _Passed, *, watched: bool = True, exception_handlers: dict[Any, Any] | None = None
) -> DirectCallbacksApp:
    app = DirectCallbacksApp(exception_handlers=exception_handlers)
    router = APIRouter()

    async def callback(request: Request) -> Response:
        return JSONResponse({"got": (await request.body()).decode()})

    async def failing(request: Request) -> Response:
        raise _Failed("the endpoint failed")

    async def refusing(request: Request) -> Response:
        return JSONResponse({"error": "invalid or expired signature"}, status_code=401)

    async def refusing_with_an_exception(request: Request) -> Response:
        raise HTTPException(status_code=403, detail="not yours", headers={"X-Why": "policy"})

    async def with_parameter(request: Request) -> Response:
        return JSONResponse({"id": request.path_params["id"]})

    router.add_route("/chat/events", callback, methods=["POST"], include_in_schema=False)
    router.add_route("/chat/failing", failing, methods=["POST"], include_in_schema=False)
    router.add_route("/chat/refusing", refusing, methods=["POST"], include_in_schema=False)
    router.add_route("/chat/raising", refusing_with_an_exception, methods=["POST"], include_in_schema=False)
    router.add_route("/chat/{id}", with_parameter, methods=["POST"], include_in_schema=False)

    @router.post("/api/thing")
    async def thing() -> dict[str, str]:
        return {"thing": "ok"}

    app.include_callbacks(router)
    if watched:
        passed.watch(app)
    return app


async def test_a_callback_route_is_answered_without_fastapi_and_others_pass_it() -> None:
    passed = _Passed()
    transport = httpx.ASGITransport(app=_app(passed))
    async with httpx.AsyncClient(transport=transport, base_url="http://kobot.test") as client:
        answer = await client.post("/chat/events", content=b"hello")
        assert (answer.status_code, answer.json()) == (200, {"got": "hello"})
        assert passed.paths == []
        # routes outside the contract (path parameters, FastAPI's own routes) take the usual way
        assert (await client.post("/chat/7")).json() == {"id": "7"}
        assert (await client.post("/api/thing")).json() == {"thing": "ok"}
        assert passed.paths == ["/chat/7", "/api/thing"]
        # another method on a callback path is FastAPI's answer, as before
        assert (await client.get("/chat/events")).status_code == 405


async def test_an_http_exception_of_a_callback_is_answered_as_fastapi_answers_it() -> None:
    passed = _Passed()
    transport = httpx.ASGITransport(app=_app(passed))
    async with httpx.AsyncClient(transport=transport, base_url="http://kobot.test") as client:
        answer = await client.post("/chat/raising")
    assert (answer.status_code, answer.json(), answer.headers["x-why"]) == (
        403,
        {"detail": "not yours"},
        "policy",
    )
    assert passed.paths == []


async def test_while_the_app_has_a_middleware_a_limit_or_a_handler_of_its_own_nothing_skips_it() -> None:
    """What the app is given applies to every request: a middleware, a body limit or an exception handler
    added later takes the direct path away instead of silently missing the callbacks."""
    with_middleware = _app(_Passed(), watched=False)
    added = _Passed()
    with_middleware.add_middleware(BaseHTTPMiddleware, dispatch=added.middleware())
    limited = _app(_Passed(), watched=False)
    limited.max_body_size = 10
    handled = _app(_Passed(), watched=False)
    handled.add_exception_handler(_Failed, lambda request, exc: JSONResponse({"handled": True}))
    # FastAPI's own HTTPException handler replaced (same exception, another handler): the direct path
    # answers that exception itself, so it must step aside
    replaced = _app(_Passed(), watched=False)
    replaced.add_exception_handler(
        StarletteHTTPException, lambda request, exc: JSONResponse({}, status_code=418)
    )
    given = _app(
        _Passed(), watched=False, exception_handlers={_Failed: lambda r, e: JSONResponse({"given": True})}
    )

    def client(app: DirectCallbacksApp) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        return httpx.AsyncClient(transport=transport, base_url="http://kobot.test")

    async with client(with_middleware) as a, client(limited) as b, client(handled) as c:
        assert (await a.post("/chat/events", content=b"hello")).status_code == 200
        assert added.paths == ["/chat/events"], "the added middleware saw the callback"
        assert (await b.post("/chat/events", content=b"x" * 100)).status_code == 413, "the body limit held"
        assert (await c.post("/chat/failing")).json() == {"handled": True}, "the app's own handler answered"
    async with client(replaced) as d, client(given) as e:
        assert (await d.post("/chat/raising")).status_code == 418, "the replaced handler answered"
        assert (await e.post("/chat/failing")).json() == {"given": True}, "the constructor's handler answered"


async def test_a_failing_callback_is_answered_500_and_its_exception_reaches_the_server() -> None:
    app = _app(_Passed())
    raising = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=raising, base_url="http://kobot.test") as client:
        with pytest.raises(_Failed):
            await client.post("/chat/failing")
    answering = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=answering, base_url="http://kobot.test") as client:
        answer = await client.post("/chat/failing")
    assert (answer.status_code, answer.text) == (500, "Internal Server Error")


async def test_slacks_events_skip_fastapi_in_the_real_app(redis_url: str, data_dir: Path) -> None:
    settings = Settings(
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        playbooks_dir=FIXTURE_PLAYBOOKS,
        in_process_worker=False,
        slack=SlackSettings(
            bot_token=SecretStr("xoxb-direct"), signing_secret=SecretStr("s" * 32), api_base_url=UNREACHABLE
        ),
    )
    app = create_app(settings, runtime=build_runtime(settings, handlers=False))
    try:
        passed = _Passed()
        passed.watch(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kobot.test") as client:
            forged = await client.post(EVENTS_PATH, content=b"{}", headers={"X-Slack-Signature": "v0=00"})
            assert forged.status_code == 401  # the adapter's own answer: signature checked first
            assert passed.paths == []
            assert (await client.get("/healthz")).status_code == 200
            assert passed.paths == ["/healthz"]
        # still one of the app's routes (FastAPI includes routers lazily)
        assert EVENTS_PATH in {route.path for route in iter_route_contexts(app.routes)}
    finally:
        app.state.runtime.close()


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_lines() -> Iterator[tuple[str, list[str]]]:
    """A real uvicorn serving the app, set up as `kobot serve` does: the filter on the access logger
    before uvicorn configures its logging; yields its URL and the access lines written."""
    app = _app(_Passed())
    access = logging.getLogger(ACCESS_LOGGER)
    quiet = QuietAcceptedCallbacks(app.direct_paths)
    access.addFilter(quiet)
    config = uvicorn.Config(app, host=LOOPBACK, port=0, log_level="info", lifespan="off")
    lines = _Lines()
    access.addHandler(lines)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    try:
        thread.start()
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{LOOPBACK}:{port}", lines.lines
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        access.removeFilter(quiet)
        access.removeHandler(lines)


def test_an_accepted_callback_writes_no_access_line_and_a_refused_one_does(
    access_lines: tuple[str, list[str]],
) -> None:
    url, lines = access_lines
    assert httpx.post(f"{url}/chat/events", content=b"x", timeout=5).status_code == 200
    assert httpx.post(f"{url}/chat/refusing", timeout=5).status_code == 401
    assert httpx.post(f"{url}/api/thing", timeout=5).status_code == 200
    deadline = time.monotonic() + SERVER_START_SECONDS
    while len(lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [line.split('"')[1] for line in lines] == [
        "POST /chat/refusing HTTP/1.1",
        "POST /api/thing HTTP/1.1",
    ]
