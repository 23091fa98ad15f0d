"""Cluster secrets are encrypted at rest in the real Valkey and unreadable with another key."""

from __future__ import annotations

import pytest
from redis import Redis

from kobot.errors import KobotError
from workers.cluster_secrets import ClusterSecrets


def test_values_are_encrypted_in_redis_and_read_back(redis: Redis) -> None:
    store = ClusterSecrets(redis=redis, secret=b"k" * 32)
    store.put(cluster="prod", name="admin-kubeconfig", value=b"client-key-data: SECRET")
    raw = redis.hget("kobot:cluster:prod:secrets", "admin-kubeconfig")
    assert raw is not None and b"SECRET" not in raw
    assert store.get(cluster="prod", name="admin-kubeconfig") == b"client-key-data: SECRET"
    assert store.names(cluster="prod") == ["admin-kubeconfig"]


def test_generated_password_is_stable_and_random(redis: Redis) -> None:
    store = ClusterSecrets(redis=redis, secret=b"k" * 32)
    first = store.get_or_create_password(cluster="prod", name="keepalived-auth")
    assert store.get_or_create_password(cluster="prod", name="keepalived-auth") == first
    assert store.get_or_create_password(cluster="dev", name="keepalived-auth") != first
    assert len(first) >= 32


def test_another_secret_key_cannot_read_them(redis: Redis) -> None:
    ClusterSecrets(redis=redis, secret=b"a" * 32).put(cluster="prod", name="x", value=b"v")
    with pytest.raises(KobotError, match="secret key changed"):
        ClusterSecrets(redis=redis, secret=b"b" * 32).get(cluster="prod", name="x")
