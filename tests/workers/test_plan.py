"""Cluster specs and plans: names, placement across zones, addresses, and a hash approvals can bind to."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from redis import Redis

from kobot.cluster_spec import ClusterSpec, NodeRole, Provider, StorageClass
from kobot.errors import ConflictError
from kobot.settings_ip_pools import IpPoolConfig
from kobot.validation import DEFAULT_KUBERNETES_VERSION
from workers.ippool import IpPools
from workers.plan import plan_cluster, plan_from_params, plan_scale

HOSTS = ("10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5")


def _pools(redis: Redis, *zones: str, size: int = 60) -> IpPools:
    pools = IpPools(redis)
    for number, zone in enumerate(zones, start=1):
        pools.configure(
            pool=IpPoolConfig(
                zone=zone,
                cidr=f"10.30.{number}.0/24",
                first=f"10.30.{number}.10",
                last=f"10.30.{number}.{9 + size}",
                gateway=f"10.30.{number}.1",
            )
        )
    return pools


def test_plan_manual_takes_hosts_in_order_masters_first() -> None:
    spec = ClusterSpec(name="dev", masters=3, workers=2, hosts=HOSTS)
    plan = plan_cluster(spec=spec)
    assert [(n.name, n.role, n.address) for n in plan.nodes] == [
        ("dev-master-1", NodeRole.MASTER, "10.1.0.1"),
        ("dev-master-2", NodeRole.MASTER, "10.1.0.2"),
        ("dev-master-3", NodeRole.MASTER, "10.1.0.3"),
        ("dev-worker-1", NodeRole.WORKER, "10.1.0.4"),
        ("dev-worker-2", NodeRole.WORKER, "10.1.0.5"),
    ]
    assert plan.vip is None
    assert spec.version == DEFAULT_KUBERNETES_VERSION
    # the install has no per-node balancer: without a VIP several masters stop at preflight, and the plan
    # says so instead of promising what the install does not do
    assert any("no VIP" in line and "preflight" in line for line in plan.summary_lines())
    assert not any("local balancer" in line for line in plan.summary_lines())


def test_plan_iaas_spreads_masters_over_zones_and_reserves_a_vip(redis: Redis) -> None:
    pools = _pools(redis, "az1", "az2", "az3")
    spec = ClusterSpec(
        name="prod",
        provider=Provider.VSPHERE,
        masters=3,
        workers=4,
        zones=("az1", "az2", "az3"),
        storage_classes=(StorageClass.VSPHERE_CSI,),
        gpu_workers=1,
    )
    plan = plan_cluster(spec=spec, pools=pools)
    assert [m.zone for m in plan.masters] == ["az1", "az2", "az3"]
    assert [w.zone for w in plan.workers] == ["az1", "az2", "az3", "az1"]
    assert [m.address for m in plan.masters] == ["10.30.1.10", "10.30.2.10", "10.30.3.10"]
    assert plan.vip == "10.30.1.13"
    assert [w.gpu for w in plan.workers] == [True, False, False, False]
    assert plan.masters[0].cpu == 4 and plan.workers[0].memory_mb == 16384
    assert set(pools.reserved(cluster="prod").values()) == {n.address for n in plan.nodes} | {plan.vip}
    text = "\n".join(plan.summary_lines())
    assert "VIP 10.30.1.13 (keepalived+haproxy)" in text
    assert "masters per zone: az1 1, az2 1, az3 1" in text
    assert "warning" not in text


def test_plan_two_zones_warns_about_quorum(redis: Redis) -> None:
    spec = ClusterSpec(name="prod", provider=Provider.OPENSTACK, masters=3, workers=0, zones=("a", "b"))
    plan = plan_cluster(spec=spec, pools=_pools(redis, "a", "b"))
    assert "warning: losing the zone with most masters loses etcd quorum" in "\n".join(plan.summary_lines())


def test_plan_iaas_without_zones_uses_every_pool_and_full_pool_names_the_zone(redis: Redis) -> None:
    pools = _pools(redis, "az1", "az2", size=3)
    spec = ClusterSpec(name="big", provider=Provider.OPENSTACK, masters=1, workers=9)
    with pytest.raises(ConflictError, match="IP pool of zone az1 is full"):
        plan_cluster(spec=spec, pools=pools)
    assert pools.reserved(cluster="big") == {}


def test_plan_preview_reserves_nothing_and_hashes_like_the_real_plan(redis: Redis) -> None:
    pools = _pools(redis, "az1")
    spec = ClusterSpec(name="prod", provider=Provider.VSPHERE, masters=1, workers=2)
    preview = plan_cluster(spec=spec, pools=pools, reserve=False)
    assert pools.reserved(cluster="prod") == {}
    real = plan_cluster(spec=spec, pools=pools)
    assert preview.plan_hash() == real.plan_hash()


def test_plan_hash_is_stable_and_changes_with_any_field() -> None:
    spec = ClusterSpec(name="dev", masters=1, workers=1, hosts=HOSTS[:2])
    first, second = plan_cluster(spec=spec), plan_cluster(spec=ClusterSpec(**spec.model_dump()))
    assert first.plan_hash() == second.plan_hash()
    assert len(first.plan_hash()) == 64
    other = plan_cluster(spec=ClusterSpec.model_validate(spec.model_dump() | {"cni": "flannel"}))
    assert other.plan_hash() != first.plan_hash()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"masters": 2}, "Input should be 1, 3 or 5"),
        ({"version": "1.99.0"}, "version 1.99.0 is not supported"),
        ({"pod_cidr": "10.96.0.0/16"}, "overlaps service_cidr"),
        ({"hosts": HOSTS[:3]}, "provider=manual needs hosts: 3 given for 3 masters"),
        ({"gpu_workers": 3}, "gpu_workers=3 but only 2 workers"),
        ({"storage_classes": ["cinder-csi"]}, "storage class cinder-csi needs provider=openstack"),
        ({"api_vip": "10.1.0.1"}, "api_vip 10.1.0.1 is also a host"),
        ({"os": "centos7"}, "Input should be 'rocky8'"),
        ({"name": "9prod"}, "must start with a letter"),
        (
            {
                "offline_repo": {
                    "package_repo_url": "ftp://x",
                    "image_registry": "r:5000",
                    "files_url": "http://f",
                }
            },
            "is not an http",
        ),
        ({"surprise": 1}, "Extra inputs are not permitted"),
    ],
)
def test_plan_spec_refuses_bad_input_naming_the_field(fields: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"name": "dev", "masters": 3, "workers": 2, "hosts": HOSTS}
    with pytest.raises(ValidationError, match=message):
        ClusterSpec.model_validate(base | fields)


def test_plan_scale_adds_next_names_and_removes_highest_first(redis: Redis) -> None:
    pools = _pools(redis, "az1", "az2")
    spec = ClusterSpec(name="prod", provider=Provider.VSPHERE, masters=1, workers=3)
    plan = plan_cluster(spec=spec, pools=pools)
    grown = plan_scale(plan=plan, workers=5, pools=pools)
    assert [n.name for n in grown.add] == ["prod-worker-4", "prod-worker-5"]
    assert [n.zone for n in grown.add] == ["az2", "az1"]
    assert grown.after.spec.workers == 5 and len(grown.after.workers) == 5
    assert grown.summary_lines()[0].startswith("add 2 worker(s): prod-worker-4")
    shrunk = plan_scale(plan=grown.after, workers=2)
    assert shrunk.remove == ("prod-worker-3", "prod-worker-4", "prod-worker-5")
    assert [n.name for n in shrunk.after.workers] == ["prod-worker-1", "prod-worker-2"]
    again = plan_scale(plan=shrunk.after, workers=3, pools=pools, reserve=False)
    assert [n.name for n in again.add] == ["prod-worker-3"]
    unchanged = plan_scale(plan=plan, workers=3)
    assert unchanged.summary_lines() == ["no change: the cluster already has that many workers"]


def test_plan_scale_manual_needs_one_new_host_per_worker_and_refuses_duplicates() -> None:
    plan = plan_cluster(spec=ClusterSpec(name="dev", masters=1, workers=1, hosts=HOSTS[:2]))
    with pytest.raises(ValueError, match="adding 2 workers needs 2 hosts, 1 given"):
        plan_scale(plan=plan, workers=3, hosts=["10.1.0.9"])
    with pytest.raises(ValueError, match=r"host 10\.1\.0\.2 is already a node of dev"):
        plan_scale(plan=plan, workers=2, hosts=["10.1.0.2"])
    grown = plan_scale(plan=plan, workers=2, hosts=["10.1.0.9"])
    assert grown.after.spec.hosts == ("10.1.0.1", "10.1.0.2", "10.1.0.9")
    shrunk = plan_scale(plan=grown.after, workers=1)
    assert shrunk.remove == ("dev-worker-2",) and shrunk.after.spec.hosts == ("10.1.0.1", "10.1.0.2")


def test_plan_from_params_takes_the_create_command_arguments(redis: Redis) -> None:
    params = {
        "masters": 1,
        "workers": 1,
        "provider": "manual",
        "hosts": ["10.1.0.1", "10.1.0.2"],
        "cni": "flannel",
        "break_glass": None,
    }
    plan = plan_from_params(cluster="dev", params=params, redis=redis)
    assert plan.spec.cni.value == "flannel"
    assert [n.name for n in plan.nodes] == ["dev-master-1", "dev-worker-1"]
    dumped = plan.spec.model_dump(mode="json")
    assert dumped["node_sizes"]["worker"] == {"cpu": 8, "memory_mb": 16384, "disk_gb": 100}


def test_plan_one_iaas_master_gets_a_vip_when_the_pool_has_room_and_keeps_it_on_a_retry(redis: Redis) -> None:
    pools = _pools(redis, "az1")
    spec = ClusterSpec(name="solo", provider=Provider.OPENSTACK, masters=1, workers=1)
    plan = plan_cluster(spec=spec, pools=pools)
    assert plan.vip == "10.30.1.12"
    assert "API: 1 master behind VIP 10.30.1.12" in "\n".join(plan.summary_lines())
    assert plan_cluster(spec=spec, pools=pools).vip == plan.vip
    assert len(pools.reserved(cluster="solo")) == 3


def test_plan_one_iaas_master_goes_without_a_vip_when_the_pool_is_exactly_full(redis: Redis) -> None:
    pools = _pools(redis, "az1", size=2)
    plan = plan_cluster(
        spec=ClusterSpec(name="solo", provider=Provider.OPENSTACK, masters=1, workers=1), pools=pools
    )
    assert plan.vip is None
    assert not any("VIP" in line for line in plan.summary_lines())


def test_plan_refuses_a_hand_given_vip_a_pool_would_hand_to_a_machine(redis: Redis) -> None:
    pools = _pools(redis, "az1")
    spec = ClusterSpec(name="prod", provider=Provider.OPENSTACK, masters=3, workers=0, api_vip="10.30.1.20")
    with pytest.raises(ValueError, match=r"api_vip 10.30.1.20 lies in the IP pool of zone az1 \(10.30.1.10-"):
        plan_cluster(spec=spec, pools=pools)
    assert pools.reserved(cluster="prod") == {}
    outside = plan_cluster(spec=spec.model_copy(update={"api_vip": "10.30.1.200"}), pools=pools)
    assert outside.vip == "10.30.1.200"
    assert "10.30.1.200" not in pools.reserved(cluster="prod").values()


@pytest.mark.parametrize(("vip", "network"), [("10.244.0.9", "pod_cidr"), ("10.96.0.1", "service_cidr")])
def test_spec_refuses_a_vip_inside_the_pod_or_service_range(vip: str, network: str) -> None:
    with pytest.raises(ValidationError, match=f"api_vip {vip} is inside {network}"):
        ClusterSpec(name="dev", masters=1, workers=1, hosts=HOSTS[:2], api_vip=vip)
