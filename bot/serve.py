"""`kobot serve`: the HTTP app and every configured chat adapter (with an in-process worker unless
disabled), in one uvicorn process.

Started by `bot.process.main` without the command line, so nothing here uses typer.
"""

from __future__ import annotations

import gc
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from bot.process import exit_saying, settings_or_exit
from kobot.errors import KobotError

if TYPE_CHECKING:
    from kobot.store import Store


def serve() -> None:
    """Serve until stopped; exit 2 on bad settings, 1 when the store or the app cannot be set up."""
    # Nearly everything the start allocates (modules, classes, models, schemas) lives as long as the
    # process; the collector's passes over it on the way to ready were wasted (about 60 ms of CPU, in
    # alternating starts). It collects again once the app is built, with that heap frozen out of its
    # view (the start's few cycles of garbage stay with it).
    gc.disable()

    from kobot.store import open_store

    settings = settings_or_exit()
    # The embedded Valkey boots (a process of its own, ~0.1 s) while this one imports the app.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kobot-store-open") as opening:
        store_opened = opening.submit(open_store, settings)
        _import_fastapi_deferring_its_models()
        import uvicorn

        from bot.api_direct import ACCESS_LOGGER, QuietAcceptedCallbacks
        from bot.app import create_app
        from bot.runtime import build_runtime
    store: Store | None = None
    try:
        store = store_opened.result()
        # handlers are attached once serve answers (create_app's lifespan), not before
        application = create_app(
            settings, runtime=build_runtime(settings, store=store, handlers=False), freeze_heap=True
        )
    except KobotError as exc:
        if store is not None:
            store.close()
        exit_saying(exc.user_message, code=1)
    gc.freeze()
    gc.enable()
    # uvicorn's logging set-up keeps a logger's filters
    logging.getLogger(ACCESS_LOGGER).addFilter(QuietAcceptedCallbacks(application.direct_paths))
    uvicorn.run(
        application,
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        # kobot serves no WebSocket route (DingTalk's stream is a client); "auto" imports a WebSocket
        # implementation at every start for nothing
        ws="none",
    )


def _import_fastapi_deferring_its_models() -> None:
    """FastAPI defines the OpenAPI document's models (about forty) as it is imported, and pydantic builds
    each one's validator then: about 60 ms of every start, 8 % of its instructions up to listening. kobot
    serves that document only when asked to (KOBOT_HTTP_DOCS), so FastAPI's models are defined with
    pydantic's `defer_build` (set on BaseModel for this import alone) and built by the first request for
    the document. kobot's own models defer by their base (`kobot.deferred_models`). The store opens on a
    thread meanwhile; it defines no model, so none of kobot's is caught by the setting."""
    from pydantic import BaseModel

    config = BaseModel.model_config
    previous = config.get("defer_build")
    config["defer_build"] = True
    try:
        import fastapi  # noqa: F401  # the import is the point
    finally:
        if previous is None:
            del config["defer_build"]
        else:
            config["defer_build"] = previous
