"""Tests connect only to loopback and the SSH test hosts' lab subnet: an audit hook records every other
address a socket in the test process dials or sends to, and the test that did it fails.

Python's audit events cover sockets opened in this process (the SDKs, clients, kobot itself); programs a
test starts (ansible-playbook, ssh, skopeo) are outside it."""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from typing import Any

from tests.hosts.lab import SUBNET_PREFIX

ALLOWED_NETWORKS = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
    ipaddress.ip_network("0.0.0.0/32"),  # "this host": the kernel dials loopback
    ipaddress.ip_network("::/128"),
    ipaddress.ip_network(f"{SUBNET_PREFIX}.0.0/16"),
)
"""Where a test may connect: loopback and the lab subnet that exists only on this machine's bridge."""

_lock = threading.Lock()
_dialled: list[str] = []


def _outside(address: Any) -> str | None:
    """The host of an inet address outside the allowed networks, else None (unix sockets are local)."""
    if not isinstance(address, tuple) or not address or not isinstance(address[0], str):
        return None
    host = address[0].split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host  # a name connect() would resolve: not an address a test should use
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return None if any(ip in network for network in ALLOWED_NETWORKS) else str(address)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in ("socket.connect", "socket.sendto") or len(args) < 2:
        return
    sock, address = args[0], args[1]
    if isinstance(sock, socket.socket) and sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    outside = _outside(address)
    if outside is not None:
        with _lock:
            _dialled.append(f"{event} {outside}")


def install() -> None:
    """Start recording (once per process: audit hooks cannot be removed)."""
    sys.addaudithook(_hook)


def take() -> list[str]:
    """What was dialled outside the allowed networks since the last call."""
    with _lock:
        found = list(_dialled)
        _dialled.clear()
    return found
