"""kobot's models build their validators on first use or when serve builds them all, not on import.

Each case runs in a fresh interpreter: this test process built most models long ago."""

from __future__ import annotations

from pathlib import Path

from tests.support.fresh_python import run_fresh

UNBUILT = (
    "from kobot.deferred_models import DeferredModel\n"
    "def every_model():\n"
    "    pending = list(DeferredModel.__subclasses__())\n"
    "    while pending:\n"
    "        model = pending.pop()\n"
    "        pending.extend(model.__subclasses__())\n"
    "        yield model\n"
    "def unbuilt():\n"
    "    return [m for m in every_model() if not m.__pydantic_complete__]\n"
)
"""Code defining `every_model()` (every imported DeferredModel) and `unbuilt()` (those not built yet)."""


def test_importing_a_model_does_not_build_it_and_its_first_use_does() -> None:
    code = UNBUILT + (
        "from kobot.job_records import JobEvent, JobEventType\n"
        "print(JobEvent.__pydantic_complete__)\n"
        "event = JobEvent.model_validate({'job_id': 'j1', 'type': 'log', 'message': 'hi'})\n"
        "print(JobEvent.__pydantic_complete__, event.type is JobEventType.LOG, event.message)\n"
    )
    assert run_fresh(code).splitlines() == ["False", "True True hi"]


def test_building_every_model_leaves_none_unbuilt_once_all_of_kobot_is_imported() -> None:
    """What serve does once its handlers are loaded: every model imported by then builds, none fails (an
    annotation that no longer resolves would be named here instead of failing a user's first command)."""
    code = UNBUILT + (
        "import bot.app, bot.runtime, alerts.service, workers.health_schedule, workers.compliance.schedule\n"
        "bot.runtime.load_handlers()\n"
        "from kobot.deferred_models import build_deferred_models\n"
        "models, before = len(list(every_model())), len(unbuilt())\n"
        "failed = build_deferred_models()\n"
        "print(models > 100, before > 100, failed, unbuilt())\n"
    )
    assert run_fresh(code) == "True True [] []"


def test_a_model_that_cannot_be_built_is_named_not_raised() -> None:
    code = UNBUILT + (
        "from kobot.deferred_models import DeferredModel, build_deferred_models\n"
        "class Broken(DeferredModel):\n"
        "    field: 'NoSuchType'\n"
        "class Opaque:\n"
        "    pass\n"
        "class Unvalidatable(DeferredModel):\n"
        "    field: Opaque\n"
        "print(sorted(build_deferred_models()), Broken.__pydantic_complete__)\n"
    )
    assert run_fresh(code) == "['__main__.Broken', '__main__.Unvalidatable'] False"


def test_threads_using_an_unbuilt_model_at_once_all_get_its_own_validator() -> None:
    """Serve's threads (the event loop, the worker, the build) can be first to use a model together:
    pydantic (>= 2.14.4) builds it once under its lock, and none of them validates with a half-built
    model (before the lock, a thread could get the parent's validator and drop the fields)."""
    code = UNBUILT + (
        "import threading\n"
        "from kobot.job_records import JobEvent, JobRecord, StepRecord\n"
        "barrier = threading.Barrier(8)\n"
        "results = []\n"
        "def use():\n"
        "    barrier.wait()\n"
        "    step = StepRecord.model_validate({'name': 'plan', 'title': 'Plan'})\n"
        "    event = JobEvent.model_validate({'job_id': 'j1', 'type': 'log', 'step': 'plan'})\n"
        "    results.append((step.title, event.step))\n"
        "threads = [threading.Thread(target=use) for _ in range(8)]\n"
        "for t in threads: t.start()\n"
        "for t in threads: t.join()\n"
        "print(sorted(set(results)), len(results))\n"
    )
    assert run_fresh(code) == "[('Plan', 'plan')] 8"


SERVE_UNTIL_THE_HEAP_FREEZES = UNBUILT + (
    "import asyncio, gc, sys, time\n"
    "from pathlib import Path\n"
    "from pydantic import SecretStr\n"
    "import bot.app\n"
    "from bot.app import create_app\n"
    "from bot.runtime import build_runtime\n"
    "from kobot.settings import Settings\n"
    "bot.app.HANDLERS_LOAD_DELAY_SECONDS = 0.0\n"
    "settings = Settings(redis_url=SecretStr(sys.argv[1]), data_dir=Path(sys.argv[2]),\n"
    "                    in_process_worker=False)\n"
    "app = create_app(settings, runtime=build_runtime(settings, handlers=False), freeze_heap=True)\n"
    "async def main():\n"
    "    async with app.router.lifespan_context(app):\n"
    "        at_ready = len(unbuilt())\n"
    "        first_uses = ('anyio._backends._asyncio', 'prometheus_client', 'rq')\n"
    "        made_at_ready = [name for name in first_uses if name in sys.modules]\n"
    "        deadline = time.monotonic() + 60\n"
    "        while gc.get_freeze_count() == 0 and time.monotonic() < deadline:\n"
    "            await asyncio.sleep(0.02)\n"
    "        made = [name for name in first_uses if name in sys.modules]\n"
    "        print(at_ready > 10, gc.get_freeze_count() > 0, unbuilt(), made_at_ready, len(made))\n"
    "asyncio.run(main())\n"
)
"""Starts serve's app in a fresh interpreter and prints, once the heap is frozen (or after 60 s): whether
models were unbuilt at ready, whether the heap froze, the models still unbuilt, which of the first uses
were loaded at ready and how many are loaded at the end."""


def test_serve_builds_them_once_its_handlers_are_loaded_before_it_freezes_the_heap(
    redis_url: str, data_dir: Path
) -> None:
    """The models serve imported by ready are still unbuilt then (that is the point); a moment later the
    handler load imports the rest, and all are built on a thread before the heap is frozen. anyio's thread
    machinery (for plain `def` routes), the Prometheus metrics and RQ (by the worker's or the sweep's start)
    are loaded on threads then too, not by the first request that uses them."""
    assert run_fresh(SERVE_UNTIL_THE_HEAP_FREEZES, redis_url, str(data_dir)) == "True True [] [] 3"


def test_a_dispatcher_build_that_fails_still_leaves_the_warm_ups_and_the_freeze_to_the_handler_load(
    redis_url: str, data_dir: Path
) -> None:
    """The build is tried again by the next event; until then, the first requests must not pay for what
    the handler load makes on its thread (they once did: a failed build ended the load there)."""
    broken_build = (
        "import bot.dispatcher_soon\n"
        "def no_handlers():\n"
        "    raise RuntimeError('a handler module failed to import')\n"
        "bot.dispatcher_soon.load_handlers = no_handlers\n"
    )
    code = SERVE_UNTIL_THE_HEAP_FREEZES.replace("import bot.app\n", broken_build + "import bot.app\n", 1)
    assert code != SERVE_UNTIL_THE_HEAP_FREEZES
    assert run_fresh(code, redis_url, str(data_dir)) == "True True [] [] 3"
