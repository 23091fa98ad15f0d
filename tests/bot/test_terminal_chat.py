"""`kobot chat` as a newcomer runs it: a real process on the embedded Valkey, typed at through stdin."""

from __future__ import annotations

import json
import os
import queue
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE_PLAYBOOKS = REPO / "tests" / "fixtures" / "playbooks"


class ChatProcess:
    """`kobot chat` with a line reader, so tests wait for what they expect instead of sleeping."""

    def __init__(self, data_dir: Path, *, umask: int = 0o022) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KOBOT_")},
            "PYTHONPATH": str(REPO),
            "KOBOT_DATA_DIR": str(data_dir),
            "KOBOT_PLAYBOOKS_DIR": str(FIXTURE_PLAYBOOKS),
            "KOBOT_PLUGINS": json.dumps(["tests.fixtures.operations"]),
            "COLUMNS": "200",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "chat"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            umask=umask,  # the usual one; kobot must not depend on a stricter one to keep files private
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def say(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def expect(self, fragment: str, *, timeout: float = 30) -> list[str]:
        """Read until a line contains `fragment`; returns the lines read, that one included."""
        deadline = time.monotonic() + timeout
        read: list[str] = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            read.append(line)
            self.seen.append(line)
            if fragment in line:
                return read
        raise AssertionError(
            f"no line with {fragment!r} within {timeout}s; got:\n" + "\n".join(self.seen[-40:])
        )

    def close(self) -> int:
        if self.process.poll() is None:
            self.say("exit")
            try:
                return self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                raise
        return self.process.returncode


@pytest.fixture
def chat_data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "d"
    path.mkdir()
    return path


@pytest.fixture
def chat(chat_data_dir: Path) -> Iterator[ChatProcess]:
    process = ChatProcess(chat_data_dir)
    yield process
    if process.process.poll() is None:
        process.process.kill()


def test_terminal_chat_runs_a_job_with_one_progress_message(chat: ChatProcess, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    marker.touch()
    chat.expect("kobot terminal chat")
    chat.say("help")
    chat.expect("job status")
    chat.say(f"test steps demo marker={marker}")
    lines = chat.expect("succeeded in", timeout=60)
    titles = [line for line in lines if "Job 1 · test steps demo" in line]
    assert titles, lines
    boxes = {line.strip("╭─ ") for line in lines if line.startswith("╭")}
    assert boxes == {"#2 ──╮".strip("─ ")} or all("#2" in box for box in boxes), boxes
    edits = [line for line in lines if line.startswith("↻")]
    assert all(line.startswith("↻ #2 ") for line in edits), "every edit goes to the job's one message"

    chat.say("job status 1")
    status = chat.expect("4. Finish · succeeded")
    assert any("1. Prepare · succeeded" in line for line in status)

    chat.say("scale wrkers +2 on prod")
    answer = chat.expect("Did you mean")
    assert any("workers" in line or "count" in line for line in answer)
    assert chat.close() == 0


def test_terminal_chat_failed_job_names_task_and_resumes_on_retry(chat: ChatProcess, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    chat.expect("kobot terminal chat")
    chat.say(f"test steps demo marker={marker}")
    failed = chat.expect("retry job 1 resumes at Check marker", timeout=60)
    text = "\n".join(failed)
    assert "failed at step 3/4 Check marker" in text
    assert "Task: Require the marker" in text
    assert "is missing" in text

    marker.touch()
    chat.say("重试任务 1")
    chat.expect("Retrying job 1")
    done = chat.expect("succeeded in", timeout=60)
    assert any("Job 1" in line for line in done)
    assert chat.close() == 0


def test_every_file_kobot_writes_is_owner_only(
    chat: ChatProcess, chat_data_dir: Path, tmp_path: Path
) -> None:
    """Job dirs, runner artifacts and the log are written long after start, under a umask of 022."""
    marker = tmp_path / "marker"
    marker.touch()
    chat.expect("kobot terminal chat")
    chat.say(f"test steps demo marker={marker}")
    chat.expect("succeeded in", timeout=60)
    assert chat.close() == 0
    paths = [
        path
        for path in [chat_data_dir, *chat_data_dir.rglob("*")]
        if not path.is_symlink() and not stat.S_ISSOCK(path.stat().st_mode)
    ]
    assert any(path.is_file() and "jobs" in path.relative_to(chat_data_dir).parts for path in paths), paths
    leaky = {
        str(path.relative_to(chat_data_dir)): oct(path.stat().st_mode & 0o777)
        for path in paths
        if path.stat().st_mode & 0o077
    }
    assert leaky == {}, leaky


def test_embedded_valkey_keeps_jobs_across_a_restart(chat_data_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    marker.touch()
    first = ChatProcess(chat_data_dir)
    try:
        first.expect("kobot terminal chat")
        first.say(f"test steps demo marker={marker}")
        first.expect("succeeded in", timeout=60)
        assert first.close() == 0
    finally:
        if first.process.poll() is None:
            first.process.kill()
    assert (chat_data_dir / "valkey").is_dir()

    second = ChatProcess(chat_data_dir)
    try:
        second.expect("kobot terminal chat")
        second.say("任务状态 1")
        second.expect("4. Finish · succeeded")
        assert second.close() == 0
    finally:
        if second.process.poll() is None:
            second.process.kill()


def test_leaving_the_chat_cancels_a_running_job_so_it_can_be_retried(chat_data_dir: Path) -> None:
    first = ChatProcess(chat_data_dir)
    try:
        first.expect("kobot terminal chat")
        first.say("test slow demo seconds=120")
        first.expect("step 2/2 Sleep", timeout=60)
        started = time.monotonic()
        assert first.close() == 0
        assert time.monotonic() - started < 20, "leaving must not wait for the sleep to end"
    finally:
        if first.process.poll() is None:
            first.process.kill()
    second = ChatProcess(chat_data_dir)
    try:
        second.expect("kobot terminal chat")
        second.say("job status 1")
        second.expect("2. Sleep · cancelled")
        assert second.close() == 0
    finally:
        if second.process.poll() is None:
            second.process.kill()


def test_the_cancel_choice_of_a_running_job_cancels_it_and_goes_when_it_ends(chat_data_dir: Path) -> None:
    chat = ChatProcess(chat_data_dir)
    try:
        chat.expect("kobot terminal chat")
        chat.say("test slow demo seconds=120")
        chat.expect("step 2/2 Sleep", timeout=60)
        assert any("[1] Cancel" in line for line in chat.seen), chat.seen
        chat.say("1")
        chat.expect("Cancelling job 1")
        chat.expect("cancelled at step 2/2 Sleep", timeout=30)
        final = chat.expect("retry job 1 resumes where it stopped")  # the rest of the final panel
        assert not any("Cancel" in line for line in final), final
        chat.say("1")  # the job's message has no choices any more: a plain line, not a click
        chat.expect("I did not understand")
        assert chat.close() == 0
    finally:
        if chat.process.poll() is None:
            chat.process.kill()
