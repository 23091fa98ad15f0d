"""kobot's pydantic models build their validators on first use, not when their module is imported.

Building a model's core schema, validator and serializer is most of what importing a module of models
costs: `kobot serve` imported about fifty of them on its way to ready (job and cluster records, chat
messages, approvals, the policy document, the alert payloads) and used four before it answered (about 3 %
of the instructions of its start, counted with callgrind). Serve builds them all on a thread a moment after it
answers (`build_deferred_models`), and `kobot worker` before it forks its first job; a model used before
that builds on its first use.

Two kinds stay plain `BaseModel`s, as deferring gains nothing for them: the settings (validated at once)
and the REST API's bodies and answers (FastAPI builds its own validators for them with the routes, and a
deferred body model makes pydantic warn about FastAPI's `Body` alias at every request).

Serve's threads can be first to use a model together: pydantic 2.14.4, which kobot requires, builds under
one lock (`model_rebuild`), so no thread validates with a model another one is still building.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict

log = logging.getLogger(__name__)


class DeferredModel(BaseModel):
    """Base of kobot's models (settings aside): the validator is built on first use, or by
    `build_deferred_models`. Subclasses set their own `model_config`; pydantic merges it with this one."""

    model_config = ConfigDict(defer_build=True)


def build_deferred_models() -> list[str]:
    """Build every imported `DeferredModel` that is not built yet; the names of those that cannot be built
    (an annotation that does not resolve, a type pydantic cannot validate: their first use raises, as
    their import would have), which are also logged.

    Serve calls it on a thread once it answers and the handlers are loaded, so the first message that
    uses a model does not pay for its build."""
    failed: list[str] = []
    pending: list[type[BaseModel]] = list(DeferredModel.__subclasses__())
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        if model.__pydantic_complete__:
            continue
        try:
            built = model.model_rebuild(raise_errors=False) is not False
        except Exception:  # a schema pydantic cannot generate raises even so
            built = False
        if not built:
            failed.append(f"{model.__module__}.{model.__qualname__}")
    if failed:
        log.error("models whose validator cannot be built: %s", ", ".join(failed))
    return failed
