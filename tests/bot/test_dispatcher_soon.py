"""The dispatcher (with the parser, the grammar, the flows and autoheal) is built after `kobot serve`
answers, not before; a chat event that comes sooner waits for the build on a thread and is answered.
Import cases run in a fresh interpreter, since this test process has long loaded the dispatcher."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.autoheal import AutohealVerdict
from bot.dispatcher import Dispatcher
from bot.dispatcher_soon import AutohealSoon, DispatcherSoon
from bot.runtime import Runtime
from kobot.conversations import Conversation, Identity, InboundMessage
from tests.bot.recording_adapter import RecordingAdapter
from tests.support.dispatching import dispatching_runtime
from tests.support.fresh_python import RUNTIME_WITHOUT_HANDLERS, importer_watch, run_fresh

BUILT_AFTER_THE_START = ("bot.dispatcher", "bot.autoheal", "commands.parser", "commands.grammar")

BUILD_WAIT_SECONDS = 30.0
"""Longest the build may take on a busy machine."""
SHORT_DELAY_SECONDS = 0.4
"""A start delay the tests wait out."""
EARLY_EVENTS = 20
"""More events than the default thread pool of a 2-core machine has threads (6)."""

POLICY = "roles: {}\n"


def _message(text: str) -> InboundMessage:
    return InboundMessage(
        identity=Identity(platform="slack", user_id="U7", display_name="Olu"),
        conversation=Conversation(platform="slack", conversation_id="C0OPS"),
        text=text,
    )


@pytest.fixture
def runtime(redis_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    rt = dispatching_runtime(redis_url=redis_url, data_dir=data_dir, policy=POLICY, policy_dir=tmp_path)
    yield rt
    rt.close()


def test_importing_the_app_imports_neither_the_dispatcher_nor_the_parser() -> None:
    # the control half: the same names are seen once imported, so an empty first list is no typo
    loaded = run_fresh(
        "import sys, bot.app\n"
        f"names = {BUILT_AFTER_THE_START!r}\n"
        "print(sorted(m for m in names if m in sys.modules))\n"
        "import bot.dispatcher, bot.autoheal\n"
        "print(sorted(m for m in names if m in sys.modules))\n"
    )
    assert loaded.splitlines() == ["[]", str(sorted(BUILT_AFTER_THE_START))]


def test_a_chat_event_before_the_build_builds_it_on_a_thread_and_is_answered(
    redis_url: str, data_dir: Path
) -> None:
    answer = run_fresh(
        importer_watch("bot.dispatcher") + RUNTIME_WITHOUT_HANDLERS + "import asyncio\n"
        "from bot.dispatcher_soon import DispatcherSoon\n"
        "soon = DispatcherSoon(runtime=runtime, start_delay=3600)\n"
        "async def main():\n"
        "    soon.start()\n"
        "    built_before = soon.is_built\n"
        "    await soon.on_message(message)\n"
        "    await soon.stop()\n"
        "    return built_before\n"
        "built_before = asyncio.run(main())\n"
        "runtime.close()\n"
        "print(built_before, importers, len(recording.deliveries) > 0)",
        redis_url,
        str(data_dir),
    )
    assert answer.startswith("False ['"), answer
    assert "MainThread" not in answer and answer.endswith(" True"), answer


async def test_the_start_builds_it_unasked_after_its_delay_not_before(runtime: Runtime) -> None:
    soon = DispatcherSoon(runtime=runtime, start_delay=SHORT_DELAY_SECONDS)
    soon.start()
    try:
        assert not soon.is_built
        await asyncio.sleep(SHORT_DELAY_SECONDS / 4)
        assert not soon.is_built
        for _ in range(int(BUILD_WAIT_SECONDS / 0.02)):
            if soon.is_built:
                break
            await asyncio.sleep(0.02)
        assert soon.is_built
    finally:
        await soon.stop()


async def test_stopping_before_the_delay_builds_nothing(runtime: Runtime) -> None:
    soon = DispatcherSoon(runtime=runtime, start_delay=SHORT_DELAY_SECONDS)
    soon.start()
    await soon.stop()
    await asyncio.sleep(SHORT_DELAY_SECONDS * 3)
    assert not soon.is_built


async def test_events_before_the_build_wait_for_one_build_and_go_on_in_the_order_they_came(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[str] = []
    handled: list[str] = []
    real_init = Dispatcher.__init__

    def slow_init(self: Dispatcher, *, runtime: Runtime) -> None:
        builds.append(threading.current_thread().name)
        time.sleep(0.3)  # the events below all arrive while it builds
        real_init(self, runtime=runtime)

    async def record(self: Dispatcher, message: InboundMessage) -> None:
        handled.append(message.text)

    monkeypatch.setattr(Dispatcher, "__init__", slow_init)
    monkeypatch.setattr(Dispatcher, "on_message", record)
    soon = DispatcherSoon(runtime=runtime, start_delay=3600.0)
    texts = [f"job status {n}" for n in range(EARLY_EVENTS)]
    await asyncio.gather(*(soon.on_message(_message(text)) for text in texts))
    assert handled == texts
    assert len(builds) == 1 and builds[0] != threading.main_thread().name


async def test_a_failed_build_answers_the_event_with_a_reference_and_the_next_event_tries_again(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_init = Dispatcher.__init__
    failures = [RuntimeError("a broken install")]

    def failing_once(self: Dispatcher, *, runtime: Runtime) -> None:
        if failures:
            raise failures.pop()
        real_init(self, runtime=runtime)

    monkeypatch.setattr(Dispatcher, "__init__", failing_once)
    recording = runtime.adapters["slack"]
    assert isinstance(recording, RecordingAdapter)
    soon = DispatcherSoon(runtime=runtime, start_delay=3600.0)
    await soon.on_message(_message("whoami"))
    (answer,) = [delivery.message for delivery in recording.deliveries]
    assert answer.title == "Error" and "a broken install" not in answer.to_text()
    assert not soon.is_built
    await soon.on_message(_message("whoami"))
    assert soon.is_built and len(recording.deliveries) > 1


async def test_autoheal_rounds_run_on_the_autoheal_built_with_the_dispatcher(runtime: Runtime) -> None:
    soon = DispatcherSoon(runtime=runtime, start_delay=3600.0)
    outcome = await AutohealSoon(soon).consider("prod", {"w1": False})
    assert outcome.verdict is AutohealVerdict.NOTHING  # autoheal is off for a cluster never set up
    assert soon.is_built
    dispatcher, autoheal = soon.built()
    assert autoheal._approvals is dispatcher.approvals and autoheal._runs is dispatcher.runs
