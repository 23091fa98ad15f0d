"""Addon figures on this machine: the monitoring addon (kube-prometheus-stack) rendered from the loopback
chart repository by Helm in a child process, then server-side applied to the Kubernetes API peer."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import yaml
from kubernetes import config

from tests.addons.chart_server import ChartRepository
from tests.peers.kubernetes import KubernetesApiPeer
from workers.addons.apply import ServerSideApplier
from workers.addons.catalog import CATALOG, AddonInputs
from workers.addons.steps import render_addon

ROUNDS = 3


def run() -> dict[str, float]:
    """Worst render time and worst apply time of monitoring over a few rounds (seconds)."""
    renders: list[float] = []
    applies: list[float] = []
    inputs = AddonInputs(
        cluster="bench", user_values={}, webhook_url="https://kobot.bench.test/alerts", webhook_token="t"
    )
    with tempfile.TemporaryDirectory(prefix="kobot-bench-") as tmp, ChartRepository() as repository:
        for _ in range(ROUNDS):
            started = time.perf_counter()
            manifests, _, _ = render_addon(
                entry=CATALOG["monitoring"],
                inputs=inputs,
                repository=repository.url,
                registry="mirror.bench.test:5000",
                charts_dir=Path(tmp) / "charts",
                upgrade=False,
            )
            renders.append(time.perf_counter() - started)
            with KubernetesApiPeer() as peer:
                kubeconfig = peer.write_kubeconfig(Path(tmp) / "kubeconfig")
                api = config.new_client_from_config_dict(
                    config_dict=yaml.safe_load(kubeconfig.read_text()), persist_config=False
                )
                applier = ServerSideApplier(api)
                started = time.perf_counter()
                for manifest in manifests:
                    applier.apply(manifest)
                applies.append(time.perf_counter() - started)
                api.close()
    return {"monitoring_render_max_s": max(renders), "monitoring_apply_max_s": max(applies)}


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name}: {value:.2f}")
