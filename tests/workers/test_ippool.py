"""IP pools in a real Valkey: atomic, per zone, idempotent per node, clear when full."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from redis import Redis

from kobot.errors import ConflictError, NotFoundError
from kobot.settings_ip_pools import IpPoolConfig
from workers.ippool import IpPools, pool_summary


def _pools(redis: Redis) -> IpPools:
    pools = IpPools(redis)
    pools.configure(
        pool=IpPoolConfig(
            zone="az1", cidr="10.20.1.0/24", first="10.20.1.10", last="10.20.1.14", gateway="10.20.1.12"
        )
    )
    pools.configure(pool=IpPoolConfig(zone="az2", cidr="10.20.2.0/24", first="10.20.2.10", last="10.20.2.40"))
    return pools


def test_ippool_reserves_in_order_skipping_the_gateway(redis: Redis) -> None:
    pools = _pools(redis)
    got = pools.reserve(cluster="prod", nodes={"prod-master-1": "az1", "prod-master-2": "az1", "w": "az2"})
    assert got == {"prod-master-1": "10.20.1.10", "prod-master-2": "10.20.1.11", "w": "10.20.2.10"}
    third = pools.reserve(cluster="prod", nodes={"prod-master-3": "az1"})
    assert third == {"prod-master-3": "10.20.1.13"}
    assert pools.free("az1") == 1
    assert pools.reserved(cluster="prod")["w"] == "10.20.2.10"


def test_ippool_same_node_gets_its_address_back_and_other_clusters_never_share(redis: Redis) -> None:
    pools = _pools(redis)
    first = pools.reserve(cluster="prod", nodes={"prod-worker-1": "az2"})
    again = pools.reserve(cluster="prod", nodes={"prod-worker-1": "az2"})
    other = pools.reserve(cluster="dev", nodes={"dev-worker-1": "az2"})
    assert first == again == {"prod-worker-1": "10.20.2.10"}
    assert other == {"dev-worker-1": "10.20.2.11"}


def test_ippool_full_pool_is_an_error_naming_the_zone_and_reserves_nothing(redis: Redis) -> None:
    pools = _pools(redis)
    nodes = {f"n{i}": "az1" for i in range(5)} | {"x": "az2"}
    with pytest.raises(ConflictError) as caught:
        pools.reserve(cluster="prod", nodes=nodes)
    assert "zone az1 is full" in caught.value.user_message
    assert "5 addresses needed, 4 free" in caught.value.user_message
    assert pools.reserved(cluster="prod") == {}
    assert pools.free("az2") == 31


def test_ippool_preview_reserves_nothing(redis: Redis) -> None:
    pools = _pools(redis)
    assert pools.preview(cluster="prod", nodes={"a": "az2"}) == {"a": "10.20.2.10"}
    assert pools.reserved(cluster="prod") == {}
    assert pools.reserve(cluster="dev", nodes={"b": "az2"}) == {"b": "10.20.2.10"}


def test_ippool_release_frees_only_the_named_nodes(redis: Redis) -> None:
    pools = _pools(redis)
    pools.reserve(cluster="prod", nodes={"a": "az2", "b": "az2", "c": "az1"})
    assert pools.release(cluster="prod", nodes=["b", "unknown"]) == ["b"]
    assert pools.reserved(cluster="prod") == {"a": "10.20.2.10", "c": "10.20.1.10"}
    assert pools.reserve(cluster="dev", nodes={"d": "az2"}) == {"d": "10.20.2.11"}
    assert sorted(pools.release(cluster="prod")) == ["a", "c"]
    assert pools.free("az1") == 4


def test_ippool_node_moving_zone_gives_the_old_address_back(redis: Redis) -> None:
    pools = _pools(redis)
    pools.reserve(cluster="prod", nodes={"a": "az1"})
    assert pools.reserve(cluster="prod", nodes={"a": "az2"}) == {"a": "10.20.2.10"}
    assert pools.free("az1") == 4


def test_ippool_unknown_zone_names_the_configured_ones(redis: Redis) -> None:
    with pytest.raises(NotFoundError, match=r"no IP pool for zone az9 \(pools: az1, az2\)"):
        _pools(redis).reserve(cluster="prod", nodes={"a": "az9"})


@pytest.mark.parametrize(
    ("cidr", "first", "last", "message"),
    [
        ("10.0.0.0/24", "10.0.1.5", "10.0.0.9", "not a host address"),
        ("10.0.0.0/24", "10.0.0.0", "10.0.0.9", "not a host address"),
        ("10.0.0.0/24", "10.0.0.9", "10.0.0.5", "is empty"),
        ("10.0.0.1/24", "10.0.0.5", "10.0.0.9", "host bits set"),
    ],
)
def test_ippool_config_refuses_bad_ranges(cidr: str, first: str, last: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        IpPoolConfig(zone="az1", cidr=cidr, first=first, last=last)


def test_ippool_summary_shows_range_and_free(redis: Redis) -> None:
    pools = _pools(redis)
    pools.reserve(cluster="prod", nodes={"a": "az1"})
    assert pool_summary(pools) == [
        "az1: 10.20.1.10-10.20.1.14 (3 free)",
        "az2: 10.20.2.10-10.20.2.40 (31 free)",
    ]
