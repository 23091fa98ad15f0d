"""An import and a create (or another import) of the same name at once, against the Kubernetes API peer
and a real Valkey: the import reads the API for seconds, and what appears under its name meanwhile is
kept, not overwritten by the import's record, kubeconfig or key."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from kobot.clusters import ClusterRecord, ClusterStore
from kobot.errors import ConflictError
from kobot.store import secret_key
from tests.cluster_import.test_import_peer import _settings
from tests.peers.kubernetes import KubernetesApiPeer
from workers.cluster_import import import_cluster
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets

PROBE_HELD_SECONDS = 3.0
"""How long the peer holds the import's first API read, while the test creates the same name."""

NAME_CHECKED_SECONDS = 1.0
"""By then the import has checked the name (milliseconds) and waits on the held read."""


@pytest.fixture
def peer() -> Iterator[KubernetesApiPeer]:
    with KubernetesApiPeer(tls=True) as server:
        server.add_node("legacy-cp-1", role="master")
        yield server


@pytest.fixture
def kubeconfig(peer: KubernetesApiPeer, tmp_path: Path) -> bytes:
    return peer.write_kubeconfig(tmp_path / "legacy.kubeconfig").read_bytes()


def test_import_peer_refuses_a_name_taken_while_it_probed_and_keeps_the_first_record(
    peer: KubernetesApiPeer, kubeconfig: bytes, redis: Redis, redis_url: str, data_dir: Path
) -> None:
    settings = _settings(redis_url, data_dir)
    secret = secret_key(settings)
    peer.slow(PROBE_HELD_SECONDS, path="/version")
    outcome: list[BaseException | ClusterRecord] = []

    def run_import() -> None:
        try:
            outcome.append(
                import_cluster(
                    name="legacy",
                    kubeconfig=kubeconfig,
                    by="api:root",
                    redis=redis,
                    secret=secret,
                    settings=settings,
                )
            )
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    importing = threading.Thread(target=run_import)
    importing.start()
    time.sleep(NAME_CHECKED_SECONDS)
    assert importing.is_alive() and ClusterStore(redis).get("legacy") is None
    ClusterStore(redis).save(ClusterRecord(name="legacy", provider="manual"))
    ClusterSecrets(redis=redis, secret=secret).put(cluster="legacy", name=KUBECONFIG_SECRET, value=b"first")
    importing.join(timeout=30)

    [result] = outcome
    assert isinstance(result, ConflictError), result
    assert "legacy was created or imported meanwhile" in result.user_message
    kept = ClusterStore(redis).require("legacy")
    assert kept.provider == "manual" and kept.imported is None
    assert (
        ClusterSecrets(redis=redis, secret=secret).get(cluster="legacy", name=KUBECONFIG_SECRET) == b"first"
    )
