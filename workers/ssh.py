"""Wait until every host answers SSH, so Ansible starts only when the machines can be reached.

A host counts as up when it sends an SSH-2.0 identification line (RFC 4253 4.2), not merely when a
port accepts connections: a booting machine's port can be open before sshd is ready. A host that is, or
resolves to, kobot's own machine or a metadata address is refused before any probe.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from kobot import automation_values, defaults
from kobot.errors import JobCancelledError, StepFailedError

PROBE_CONNECT_TIMEOUT_SECONDS = 5.0
"""One probe's connect-and-read limit; a host slower than this is probed again next round."""

PROBE_WORKERS_MAX = 64
"""Hosts probed at the same time; a 50-node cluster is probed in one round."""

BANNER_MAX_BYTES = 4096
"""RFC 4253 lets a server send other lines before its identification; read this much at most."""

HOSTS_NAMED_MAX = 10
"""Hosts listed by name in a failure message; the rest are counted."""


def probe_ssh(host: str, port: int, *, timeout: float = PROBE_CONNECT_TIMEOUT_SECONDS) -> str | None:
    """None when the host sent an SSH-2.0 banner, else why not (for the failure message)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            received = b""
            while len(received) < BANNER_MAX_BYTES:
                chunk = conn.recv(BANNER_MAX_BYTES - len(received))
                if not chunk:
                    return "closed the connection without an SSH banner"
                received += chunk
                for line in received.split(b"\n")[:-1]:
                    if line.startswith((b"SSH-2.0-", b"SSH-1.99-")):
                        return None
            return "sent no SSH banner"
    except TimeoutError:
        return "timed out"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def wait_for_ssh(
    *,
    hosts: Sequence[tuple[str, int]],
    timeout: float,
    should_cancel: Callable[[], bool] | None,
    interval: float = defaults.SSH_PROBE_INTERVAL_SECONDS,
    allow_local: bool = False,
) -> None:
    """Probe every host in parallel each `interval` until all answered; fail naming those that never did.

    `allow_local` (the test-only allow_local_hosts setting) lets loopback hosts be probed."""
    for host, _port in hosts:
        try:
            automation_values.host_address(host, allow_local=allow_local)
            automation_values.check_resolved(host, allow_local=allow_local)
        except automation_values.UnsafeValueError as exc:
            raise StepFailedError(
                f"kobot will not connect to {host}", task="wait for SSH", host=host, error=str(exc)
            ) from None
    pending = dict.fromkeys(dict.fromkeys(hosts), "not probed yet")
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(max_workers=max(1, min(PROBE_WORKERS_MAX, len(pending)))) as pool:
        while pending:
            _check_cancel(should_cancel)
            budget = max(0.1, min(PROBE_CONNECT_TIMEOUT_SECONDS, deadline - time.monotonic()))
            probes = {hp: pool.submit(probe_ssh, hp[0], hp[1], timeout=budget) for hp in pending}
            for host_port, probe in probes.items():
                problem = probe.result()
                if problem is None:
                    del pending[host_port]
                else:
                    pending[host_port] = problem
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise _never_answered(pending, timeout)
            _sleep(min(interval, deadline - time.monotonic()), should_cancel)
    if pending:
        raise _never_answered(pending, timeout)


def _never_answered(pending: dict[tuple[str, int], str], timeout: float) -> StepFailedError:
    named = [
        f"{host}:{port} ({problem})" for (host, port), problem in list(pending.items())[:HOSTS_NAMED_MAX]
    ]
    more = len(pending) - len(named)
    listed = ", ".join(named) + (f" and {more} more" if more > 0 else "")
    first_host = next(iter(pending))[0]
    return StepFailedError(
        f"no SSH answer within {timeout:g}s from {listed}",
        task="wait for SSH",
        host=first_host,
        error=next(iter(pending.values())),
    )


def _sleep(seconds: float, should_cancel: Callable[[], bool] | None) -> None:
    end = time.monotonic() + max(0.0, seconds)
    while (left := end - time.monotonic()) > 0:
        _check_cancel(should_cancel)
        time.sleep(min(defaults.CANCEL_POLL_SECONDS, left))


def _check_cancel(should_cancel: Callable[[], bool] | None) -> None:
    if should_cancel is not None and should_cancel():
        raise JobCancelledError("cancelled while waiting for SSH")
