"""The FastAPI app: chat callbacks, the Alertmanager webhook, the REST API, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from alerts.exposure import check_webhook_exposure
from alerts.metrics import alerts_dropped
from alerts.receiver import build_router
from alerts.store import open_alert_store
from bot.api import api_router
from bot.api_audit import audit_router
from bot.api_clusters import clusters_router
from bot.api_commands import commands_router
from bot.api_direct import DirectCallbacksApp
from bot.api_replies import RestReplies
from bot.chat.registry import build_adapters
from bot.metrics import metrics
from bot.runtime import AlertPipeline, Runtime, build_runtime
from bot.supervisor import Supervisor
from kobot.defaults import AFTER_START_LOADS_WAIT_SECONDS, HANDLERS_LOAD_DELAY_SECONDS
from kobot.deferred_models import build_deferred_models
from kobot.settings import Settings

if TYPE_CHECKING:
    from alerts.service import AlertService

log = logging.getLogger(__name__)


def create_app(
    settings: Settings, *, runtime: Runtime | None = None, freeze_heap: bool = False
) -> DirectCallbacksApp:
    """Build the app for these settings. The store opens now; everything else starts with the lifespan.

    `freeze_heap`: once the handlers are attached, take everything loaded out of the garbage collector's
    view (`kobot serve` does: the process is that app alone; a process that builds apps among other work,
    as a test run does, would keep its own garbage of that moment forever)."""
    runtime = runtime or build_runtime(settings)
    runtime.adapters.update(build_adapters(runtime))
    alerts = _alert_pipeline(runtime)
    supervisor = Supervisor(
        runtime=runtime,
        in_process_worker=settings.in_process_worker,
        start_jobs_after=HANDLERS_LOAD_DELAY_SECONDS,
    )
    # Joins the adapters after the supervisor built one notifier per adapter: REST callers follow their
    # jobs at GET /api/v1/jobs/{id}, so nothing reads the event stream to post progress for them.
    rest = RestReplies()
    runtime.adapters[rest.platform] = rest

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await supervisor.start()
        # Attaching every command's handler imports most of kobot (the bundle builder, the cluster
        # readers), and the dispatcher the parser and its flows: both happen once serve answers, with
        # a command that comes first waiting for them (`DispatcherSoon`).
        handlers_loaded = asyncio.create_task(
            _load_handlers_soon(freeze_heap=freeze_heap, supervisor=supervisor, alerts=alerts)
        )
        try:
            yield
        finally:
            try:
                handlers_loaded.cancel()
                await asyncio.gather(handlers_loaded, return_exceptions=True)
                await supervisor.stop()
                await runtime.audit.aclose()
            finally:
                runtime.close()  # the store (and an embedded Valkey) stops last, whatever failed before

    # The interactive docs and the schema are off unless asked for (KOBOT_HTTP_DOCS).
    docs = settings.http_docs
    app = DirectCallbacksApp(
        title="kobot",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.runtime = runtime
    app.state.supervisor = supervisor
    app.include_router(api_router(runtime, ping_store=alerts.store.ping))
    app.include_router(commands_router(runtime=runtime, dispatching=supervisor.dispatching, replies=rest))
    app.include_router(audit_router(audit=runtime.audit, policy=runtime.policy))
    app.include_router(clusters_router(runtime))
    for adapter in runtime.adapters.values():
        router = adapter.router()
        if router is not None:
            # a chat callback's own route (Slack's events) skips FastAPI's middleware and route matching
            app.include_callbacks(router)
    # the webhook stores from its first post, before the pipeline that delivers is built
    app.include_router(build_router(settings=settings.alerts, store=alerts.store, on_stored=alerts.stored))
    return app


def _alert_pipeline(runtime: Runtime) -> AlertPipeline:
    """The alert service, built once serve answers; its settings are checked now, so a webhook open to
    the network or a runbook that would break glass still stops the start."""
    settings = runtime.settings
    check_webhook_exposure(settings.alerts, http_host=settings.http_host)
    if settings.alerts.runbook_commands:
        # checked with the command parser, which only they need imported this early (about 20 ms)
        from alerts.runbooks import check_templates

        check_templates(settings.alerts.runbook_commands)
    store = open_alert_store(runtime.store.url)

    def build() -> AlertService:
        # imported on the build's thread, once serve answers: the import is most of what building costs
        from alerts.service import AlertService

        return AlertService(
            settings=settings,
            store_url=runtime.store.url,
            adapters=runtime.adapters,
            secret=runtime.secret,
            policy=runtime.policy,
            audit=runtime.audit,
            store=store,
            settings_checked=True,
        )

    pipeline = AlertPipeline(store=store, build=build, start_delay=HANDLERS_LOAD_DELAY_SECONDS)
    runtime.alerts = pipeline
    return pipeline


def _make_what_first_requests_use() -> None:
    """Made here on a thread, once serve answers, instead of by the first request that needs them, on the
    event loop: anyio's asyncio back end, which Starlette's first run of a plain `def` route imports
    (about 40 ms), and kobot's Prometheus metrics with prometheus_client (`bot.metrics`)."""
    import anyio._backends._asyncio  # noqa: F401  # the import is the point

    metrics()
    alerts_dropped()


async def _warm_up(make: Callable[[], object]) -> None:
    """`make` on a thread. A failure is logged and the handler load goes on: what `make` would have made,
    the first request that needs it makes (or fails on, and says so)."""
    try:
        await asyncio.to_thread(make)
    except Exception:
        log.warning("after the start, %s failed; going on without it", make.__name__, exc_info=True)


async def _load_handlers_soon(*, freeze_heap: bool, supervisor: Supervisor, alerts: AlertPipeline) -> None:
    """Attach every handler and build the dispatcher on a thread once the server is up (uvicorn listens
    after the lifespan's start): doing it beside the start would hold the interpreter while it comes up.
    Then, on a thread too, make what first requests would make on the event loop (anyio's thread
    machinery, the metrics) and build the validators of every model imported so far
    (`kobot.deferred_models`), so no request pays for them; events are answered meanwhile.

    The models are built once the other loads set off a moment after the start (the alert pipeline's
    build, the schedulers' and the jobs' start) are in, as they import models too; at most
    AFTER_START_LOADS_WAIT_SECONDS after the dispatcher's build, since the jobs' start is retried while
    the store does not answer.

    Then, with `freeze_heap`, everything loaded so far (modules, models, schemas: several hundred
    thousand objects that live as long as the process) leaves the garbage collector's view: its full
    collections scanned them all again and again under load, in pauses of milliseconds on the event
    loop."""
    await asyncio.sleep(HANDLERS_LOAD_DELAY_SECONDS)
    # A failed build is logged by the build; an event retries it and is answered with a reference to the
    # log. The warm-ups below need no dispatcher: skipping them would leave their cost to the first requests.
    with contextlib.suppress(Exception):
        await supervisor.dispatching.dispatcher()
    await _warm_up(_make_what_first_requests_use)
    # The loads set off beside this one import modules of models too: the models are built, and the heap
    # frozen, once those are in (each logs its own failure; the wait is bounded, see the default).
    others = [*supervisor.loads_after_start(), *([alerts.starting] if alerts.starting is not None else [])]
    if others:
        await asyncio.wait(others, timeout=AFTER_START_LOADS_WAIT_SECONDS)
    await _warm_up(build_deferred_models)
    if freeze_heap:
        gc.freeze()
