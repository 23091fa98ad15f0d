"""The dispatcher (with the parser, the grammar, the flows and autoheal) is built after `kobot serve`
answers, not before; a chat event that comes sooner waits for the build on a thread and is answered.
Import cases run in a fresh interpreter, since this test process has long loaded the dispatcher."""

from __future__ import annotations

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
        "soon = DispatcherSoon(runtime=runtime)\n"
        "async def main():\n"
        "    built_before = soon.is_built\n"
        "    await soon.on_message(message)\n"
        "    return built_before\n"
        "built_before = asyncio.run(main())\n"
        "runtime.close()\n"
        "print(built_before, importers, len(recording.deliveries) > 0)",
        redis_url,
        str(data_dir),
    )
    assert answer.startswith("False ['"), answer
    assert "MainThread" not in answer and answer.endswith(" True"), answer


def test_events_before_the_build_wait_for_one_build_and_are_parsed_in_the_order_they_came(
    redis_url: str, data_dir: Path
) -> None:
    """The real path, in a fresh interpreter where neither the handlers nor the catalog are loaded yet:
    every early event waits for the one build (which loads them), then parses without a thread of its
    own that could come back out of order."""
    answer = run_fresh(
        RUNTIME_WITHOUT_HANDLERS + "import asyncio, threading\n"
        "import bot.dispatcher\n"
        "from bot.dispatcher_soon import DispatcherSoon\n"
        "parsed, builds = [], []\n"
        "real_parse, real_built = bot.dispatcher.parse, DispatcherSoon.built\n"
        "def recording_parse(text, **options):\n"
        "    parsed.append(text)\n"
        "    return real_parse(text, **options)\n"
        "def counted_built(self):\n"
        "    if not self.is_built:\n"
        "        builds.append(threading.current_thread().name)\n"
        "    return real_built(self)\n"
        "bot.dispatcher.parse = recording_parse\n"
        "DispatcherSoon.built = counted_built\n"
        "soon = DispatcherSoon(runtime=runtime)\n"
        f"texts = [f'job status {{n}}' for n in range({EARLY_EVENTS})]\n"
        "early = [message.model_copy(update={'text': text}) for text in texts]\n"
        "async def main():\n"
        "    await asyncio.gather(*(soon.on_message(event) for event in early))\n"
        "asyncio.run(main())\n"
        "runtime.close()\n"
        "print(parsed == texts, len(builds), 'MainThread' in builds)",
        redis_url,
        str(data_dir),
    )
    assert answer == "True 1 False"


async def test_a_failed_build_answers_the_event_with_a_reference_and_the_next_event_tries_again(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
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
    soon = DispatcherSoon(runtime=runtime)
    await soon.on_message(_message("whoami"))
    (answer,) = [delivery.message for delivery in recording.deliveries]
    assert answer.title == "Error" and "a broken install" not in answer.to_text()
    assert "[ref " in caplog.text and caplog.text.split("[ref ")[1][:12] in answer.to_text()
    assert not soon.is_built
    await soon.on_message(_message("whoami"))
    assert soon.is_built and len(recording.deliveries) > 1


async def test_autoheal_rounds_run_on_the_autoheal_built_with_the_dispatcher(runtime: Runtime) -> None:
    soon = DispatcherSoon(runtime=runtime)
    outcome = await AutohealSoon(soon).consider("prod", {"w1": False})
    assert outcome.verdict is AutohealVerdict.NOTHING  # autoheal is off for a cluster never set up
    assert soon.is_built
    dispatcher, autoheal = soon.built()
    assert autoheal._approvals is dispatcher.approvals and autoheal._runs is dispatcher.runs
