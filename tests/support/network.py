"""Loopback ports for servers the tests start (never any other interface)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the caller binds it soon after)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@contextmanager
def silent_listener() -> Iterator[int]:
    """A loopback port (given) that takes connections and never says a word: a store stopped by SIGSTOP or
    cut off by the network, or a URL pointing at a service that waits for more than a PING."""
    held: list[socket.socket] = []
    with socket.create_server((LOOPBACK, 0)) as server:
        server.settimeout(0.1)
        stop = threading.Event()

        def accept() -> None:
            while not stop.is_set():
                try:
                    held.append(server.accept()[0])
                except TimeoutError:
                    continue

        acceptor = threading.Thread(target=accept, daemon=True)
        acceptor.start()
        try:
            yield server.getsockname()[1]
        finally:
            stop.set()
            acceptor.join(timeout=5)
            for connection in held:
                connection.close()
