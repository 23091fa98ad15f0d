"""Python code run in a fresh interpreter at the repository's root: for what a process does from its own
start (what it has imported, its collector's state), which this long-lived test process changed long ago."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FRESH_RUN_SECONDS = 120
"""Longest one run may take on a busy machine."""


def run_fresh(code: str, *args: str, env: Mapping[str, str] | None = None) -> str:
    """What `code` printed (stripped), run with `args` as its sys.argv[1:]; it must exit 0."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=FRESH_RUN_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def importer_watch(module: str) -> str:
    """Code to run first: it records in `importers` the name of the thread that imports `module`."""
    return (
        "import sys, threading\n"
        "from importlib.abc import MetaPathFinder\n"
        "importers = []\n"
        "class Watch(MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        f"        if name == {module!r}:\n"
        "            importers.append(threading.current_thread().name)\n"
        "sys.meta_path.insert(0, Watch())\n"
    )


RUNTIME_WITHOUT_HANDLERS = (
    "import sys\n"
    "from pathlib import Path\n"
    "from pydantic import SecretStr\n"
    "from bot.runtime import build_runtime\n"
    "from kobot.conversations import Conversation, Identity, InboundMessage\n"
    "from kobot.settings import Settings\n"
    "from tests.bot.recording_adapter import RecordingAdapter\n"
    "settings = Settings(redis_url=SecretStr(sys.argv[1]), data_dir=Path(sys.argv[2]),\n"
    "                    in_process_worker=False)\n"
    "runtime = build_runtime(settings, handlers=False)\n"
    "recording = runtime.adapters['slack'] = RecordingAdapter('slack')\n"
    "message = InboundMessage(identity=Identity(platform='slack', user_id='U7', display_name='Olu'),\n"
    "    conversation=Conversation(platform='slack', conversation_id='C0OPS'), text='whoami')\n"
)
"""Code building `runtime` as `kobot serve` does (handlers attached later) on the store at sys.argv[1]
with data in sys.argv[2], Slack replies recorded in `recording`, and a `whoami` from Slack in `message`."""
