"""wait_for_ssh against real sshd test hosts, plus loopback listeners for the ways a host is not ready."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from kobot.errors import JobCancelledError, StepFailedError
from tests.hosts.fixtures import host_lab, lab_hosts
from tests.hosts.lab import LabHost
from workers.ssh import probe_ssh, wait_for_ssh

__all__ = ["host_lab", "lab_hosts"]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def http_listener() -> Iterator[int]:
    """A service on the port that is not SSH (a web server where sshd was expected)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(timeout=2)
    server.close()


def test_ssh_wait_returns_once_every_lab_host_shows_its_banner(lab_hosts: list[LabHost]) -> None:
    started = time.monotonic()
    wait_for_ssh(hosts=[(h.address, h.port) for h in lab_hosts], timeout=10, should_cancel=lambda: False)
    assert time.monotonic() - started < 5
    assert all(probe_ssh(h.address, h.port) is None for h in lab_hosts)


def test_ssh_wait_keeps_probing_a_host_whose_sshd_comes_up_late_peer() -> None:
    late = socket.socket()
    late.bind(("127.0.0.1", 0))
    port = int(late.getsockname()[1])

    def come_up() -> None:
        time.sleep(0.8)
        late.listen()
        late.settimeout(5)
        conn, _ = late.accept()
        with conn:
            conn.sendall(b"a greeting line first\r\nSSH-2.0-OpenSSH_9.2\r\n")

    thread = threading.Thread(target=come_up, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        wait_for_ssh(
            hosts=[("127.0.0.1", port)], timeout=10, should_cancel=None, interval=0.2, allow_local=True
        )
        assert 0.7 < time.monotonic() - started < 5
    finally:
        thread.join(timeout=6)
        late.close()


def test_ssh_wait_fails_naming_every_host_that_never_answered(
    lab_hosts: list[LabHost], closed_port: int, http_listener: int
) -> None:
    hosts = [(lab_hosts[0].address, 22), ("127.0.0.1", closed_port), ("127.0.0.1", http_listener)]
    with pytest.raises(StepFailedError) as caught:
        wait_for_ssh(hosts=hosts, timeout=1.0, should_cancel=None, interval=0.2, allow_local=True)
    message = caught.value.user_message
    assert f"127.0.0.1:{closed_port} (Connection refused)" in message
    assert f"127.0.0.1:{http_listener} (" in message
    assert lab_hosts[0].address not in message
    assert caught.value.task == "wait for SSH"


def test_ssh_wait_stops_on_cancel(closed_port: int) -> None:
    calls = []

    def should_cancel() -> bool:
        calls.append(1)
        return len(calls) > 2

    started = time.monotonic()
    with pytest.raises(JobCancelledError):
        wait_for_ssh(
            hosts=[("127.0.0.1", closed_port)],
            timeout=60,
            should_cancel=should_cancel,
            interval=1.0,
            allow_local=True,
        )
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "0x7f000001", "169.254.169.254"])
def test_ssh_wait_refuses_this_machine_before_any_probe(host: str, http_listener: int) -> None:
    with pytest.raises(StepFailedError) as caught:
        wait_for_ssh(hosts=[(host, http_listener)], timeout=5.0, should_cancel=None)
    assert caught.value.user_message == f"kobot will not connect to {host}"
    assert caught.value.task == "wait for SSH" and caught.value.error


def test_ssh_wait_refuses_a_name_that_resolves_to_this_machine(http_listener: int) -> None:
    """A DNS name passes the textual checks; where it resolves is only known here, on the worker."""
    name = socket.gethostname().lower()
    resolved = {info[4][0] for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)}
    if not any(address.startswith("127.") or address == "::1" for address in resolved):
        pytest.skip(f"this machine's name {name} resolves to {resolved}, not to loopback")
    with pytest.raises(StepFailedError) as caught:
        wait_for_ssh(hosts=[(name, http_listener)], timeout=5.0, should_cancel=None)
    assert "resolves to" in str(caught.value.error) and "loopback" in str(caught.value.error)
