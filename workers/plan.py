"""Day 0: which machines a cluster spec (kobot.cluster_spec) needs (`ClusterPlan`).

The plan is pure data: node names, roles, zones, addresses and sizes. Approvals bind to
`ClusterPlan.plan_hash()`, so the same spec and addresses always hash the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ConfigDict
from redis import Redis

from kobot import validation
from kobot.automation_values import ALLOW_LOCAL_HOSTS
from kobot.cluster_spec import (
    ClusterSpec,
    NodeRole,
)
from kobot.deferred_models import DeferredModel
from workers.ippool import IpPools


class NodePlan(DeferredModel):
    model_config = ConfigDict(frozen=True)

    name: str
    role: NodeRole
    zone: str | None
    address: str
    cpu: int
    memory_mb: int
    disk_gb: int
    gpu: bool = False


class ClusterPlan(DeferredModel):
    """The machines a spec becomes. `plan_hash()` is what an approval binds to."""

    model_config = ConfigDict(frozen=True)

    spec: ClusterSpec
    nodes: tuple[NodePlan, ...]
    vip: str | None = None

    @property
    def masters(self) -> list[NodePlan]:
        return [node for node in self.nodes if node.role is NodeRole.MASTER]

    @property
    def workers(self) -> list[NodePlan]:
        return [node for node in self.nodes if node.role is NodeRole.WORKER]

    def canonical_json(self) -> str:
        return _canonical(self.model_dump(mode="json"))

    def plan_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def summary_lines(self) -> list[str]:
        """What chat shows before approval: short, one idea per line."""
        spec = self.spec
        lines = [
            f"cluster {spec.name}: Kubernetes {spec.version} on {spec.provider.value}, "
            f"{spec.os.value}/{spec.arch.value}, {spec.container_manager}, {spec.cni.value}, "
            f"kube-proxy {spec.kube_proxy_mode.value}",
            f"network: pods {spec.pod_cidr}, services {spec.service_cidr}",
        ]
        if spec.masters == 1 and self.vip:
            lines.append(
                f"API: 1 master behind VIP {self.vip} (keepalived+haproxy), so masters can be added later"
            )
        if spec.masters > 1:
            if self.vip:
                lines.append(f"API: {spec.masters} masters behind VIP {self.vip} (keepalived+haproxy)")
            else:
                # the install balances several masters only behind a VIP (preflight refuses without one)
                lines.append(
                    f"API: {spec.masters} masters but no VIP: the install needs a free address for one "
                    "(keepalived+haproxy) and stops at preflight without it"
                )
        for role, nodes in ((NodeRole.MASTER, self.masters), (NodeRole.WORKER, self.workers)):
            if not nodes:
                continue
            size = spec.node_sizes[role]
            sized = (
                f", {size.cpu} CPU / {size.memory_mb // 1024} GiB / {size.disk_gb} GB"
                if (spec.provider.creates_machines)
                else ""
            )
            lines.append(f"{len(nodes)} {role.value}{'s' if len(nodes) > 1 else ''}{sized}: {_names(nodes)}")
        if spec.gpu_workers:
            lines.append(
                f"GPU workers: {_names([n for n in self.nodes if n.gpu])}; NVIDIA driver and runtime "
                f"on them, the device plugin with `install gpu on {spec.name}`"
            )
        if spec.zones:
            per_zone = {zone: sum(1 for n in self.masters if n.zone == zone) for zone in spec.zones}
            lines.append("masters per zone: " + ", ".join(f"{z} {c}" for z, c in per_zone.items()))
            if spec.masters > 1 and max(per_zone.values()) * 2 >= spec.masters:
                lines.append(
                    "warning: losing the zone with most masters loses etcd quorum; use 3 or more zones"
                )
        extras = [f"storage {', '.join(s.value for s in spec.storage_classes)}"]
        if spec.ingress:
            extras.append(f"ingress {spec.ingress}")
        if spec.offline_repo:
            extras.append(f"offline repo {spec.offline_repo.package_repo_url}")
        lines.append("; ".join(extras))
        return lines


class ScalePlan(DeferredModel):
    """Adding or removing workers: which node names change, and the plan afterwards."""

    model_config = ConfigDict(frozen=True)

    add: tuple[NodePlan, ...]
    remove: tuple[str, ...]
    after: ClusterPlan

    def summary_lines(self) -> list[str]:
        lines = []
        if self.add:
            lines.append(f"add {len(self.add)} worker(s): {_names(self.add)}")
        if self.remove:
            lines.append(f"remove {len(self.remove)} worker(s): {', '.join(self.remove)}")
        return lines or ["no change: the cluster already has that many workers"]

    def plan_hash(self) -> str:
        body = {
            "add": [node.model_dump(mode="json") for node in self.add],
            "remove": list(self.remove),
            "after": self.after.plan_hash(),
        }
        return hashlib.sha256(_canonical(body).encode()).hexdigest()


def node_name(*, cluster: str, role: NodeRole, index: int) -> str:
    return f"{cluster}-{role.value}-{index}"


def plan_cluster(*, spec: ClusterSpec, pools: IpPools | None = None, reserve: bool = True) -> ClusterPlan:
    """Name, place and address every node. IaaS addresses come from the zones' pools (reserved unless
    `reserve` is false, as for a preview); manual clusters use `spec.hosts` in order, masters first."""
    layout = [(NodeRole.MASTER, i) for i in range(1, spec.masters + 1)]
    layout += [(NodeRole.WORKER, i) for i in range(1, spec.workers + 1)]
    zones = _zones(spec=spec, pools=pools)
    placed = {
        node_name(cluster=spec.name, role=role, index=index): (role, index, _zone(zones, index))
        for role, index in layout
    }
    vip = spec.api_vip
    if spec.provider.creates_machines:
        pools = _require_pools(pools)
        _refuse_vip_in_a_pool(pools, vip)
        wanted = {name: zone or "" for name, (_, _, zone) in placed.items()}
        vip_zone = zones[0] if zones else ""
        if vip is None and (
            spec.masters > 1 or _room_for_vip(pools, cluster=spec.name, zone=vip_zone, wanted=wanted)
        ):
            # One master gets a VIP too when its pool has a spare address: kubeadm's endpoint and the API
            # certificate cannot move to a VIP later, so `add node role=master` keeps this endpoint.
            wanted[f"{spec.name}-api-vip"] = vip_zone
        run = pools.reserve if reserve else pools.preview
        addresses = run(cluster=spec.name, nodes=wanted)
        vip = addresses.pop(f"{spec.name}-api-vip", vip)
    else:
        addresses = dict(zip(placed, spec.hosts, strict=True))
    nodes = tuple(
        _node(
            spec=spec, name=name, role=role, zone=zone, address=addresses[name], gpu=_gpu(spec, role, index)
        )
        for name, (role, index, zone) in placed.items()
    )
    return ClusterPlan(spec=spec, nodes=nodes, vip=vip)


def _refuse_vip_in_a_pool(pools: IpPools, vip: str | None) -> None:
    """A VIP given by hand must lie outside every pool: the pool would hand the same address to a machine."""
    if vip is None:
        return
    for zone in pools.zones():
        pool = pools.get(zone)
        if pool is not None and pool.hands_out(vip):
            raise ValueError(
                f"api_vip {vip} lies in the IP pool of zone {zone} ({pool.first}-{pool.last}), which "
                "hands it to machines: leave api_vip out and kobot reserves one from the pool, or give an "
                "address outside it"
            )


def _room_for_vip(pools: IpPools, *, cluster: str, zone: str, wanted: dict[str, str]) -> bool:
    """Whether `zone`'s pool has an address left over after the nodes `wanted` there (a retry finds
    the VIP it reserved before, and its nodes' addresses already held)."""
    if pools.get(zone) is None:
        return False
    held = pools.reserved(cluster=cluster)
    if f"{cluster}-api-vip" in held:
        return True
    needed = sum(1 for name, node_zone in wanted.items() if node_zone == zone and name not in held)
    return pools.free(zone) > needed


def plan_scale(
    *,
    plan: ClusterPlan,
    workers: int,
    pools: IpPools | None = None,
    hosts: Sequence[str] = (),
    reserve: bool = True,
    gpu_workers: int | None = None,
) -> ScalePlan:
    """Grow or shrink the workers to `workers`. New workers take the next free numbers (names are
    never reused while the old node exists); shrinking removes the highest-numbered workers first.
    `gpu_workers` is how many workers have a GPU afterwards: only new workers can add to it (a machine
    kobot already runs does not grow a GPU), the first of them up to the count."""
    spec = plan.spec
    if not 0 <= workers <= validation.WORKERS_MAX:
        raise ValueError(f"workers must be between 0 and {validation.WORKERS_MAX}, got {workers}")
    current = plan.workers
    gpu_now = sum(1 for node in current if node.gpu)
    new_gpus = 0 if gpu_workers is None else gpu_workers - gpu_now
    if new_gpus < 0 or (new_gpus and workers - len(current) < new_gpus):
        raise ValueError(
            f"gpu_workers={gpu_workers}: {spec.name} has {gpu_now} GPU workers, and only new workers "
            f"({max(workers - len(current), 0)} here) can add to them"
        )
    if workers < len(current):
        ordered = sorted(current, key=_index)
        removed = tuple(node.name for node in ordered[workers:])
        kept = tuple(node for node in plan.nodes if node.name not in removed)
        gone = {node.address for node in plan.nodes if node.name in removed}
        new_spec = spec.model_copy(
            update={
                "workers": workers,
                "gpu_workers": sum(1 for node in kept if node.gpu and node.role is NodeRole.WORKER),
                "hosts": tuple(host for host in spec.hosts if host not in gone),
            }
        )
        return ScalePlan(add=(), remove=removed, after=ClusterPlan(spec=new_spec, nodes=kept, vip=plan.vip))
    count = workers - len(current)
    if count == 0:
        return ScalePlan(add=(), remove=(), after=plan)
    next_index = max((_index(node) for node in current), default=0) + 1
    indexes = range(next_index, next_index + count)
    zones = _zones(spec=spec, pools=pools)
    names = {node_name(cluster=spec.name, role=NodeRole.WORKER, index=i): i for i in indexes}
    if spec.provider.creates_machines:
        wanted = {name: _zone(zones, i) or "" for name, i in names.items()}
        pools = _require_pools(pools)
        addresses = (pools.reserve if reserve else pools.preview)(cluster=spec.name, nodes=wanted)
    else:
        if len(hosts) != count:
            raise ValueError(
                f"provider=manual: adding {count} workers needs {count} hosts, {len(hosts)} given"
            )
        addresses = dict(zip(names, validation.host_list(hosts), strict=True))
    taken = {node.address for node in plan.nodes}
    clash = sorted(taken & set(addresses.values()))
    if clash:
        raise ValueError(f"host {', '.join(clash)} is already a node of {spec.name}")
    added = tuple(
        _node(
            spec=spec,
            name=name,
            role=NodeRole.WORKER,
            zone=_zone(zones, i),
            address=addresses[name],
            gpu=position < new_gpus,
        )
        for position, (name, i) in enumerate(names.items())
    )
    new_spec = spec.model_copy(
        update={"workers": workers, "hosts": spec.hosts + tuple(hosts), "gpu_workers": gpu_now + new_gpus}
    )
    return ScalePlan(
        add=added, remove=(), after=ClusterPlan(spec=new_spec, nodes=plan.nodes + added, vip=plan.vip)
    )


def plan_from_params(
    *,
    cluster: str,
    params: Mapping[str, Any],
    redis: Redis,
    reserve: bool = True,
    allow_local_hosts: bool = False,
) -> ClusterPlan:
    """The plan of a create command or job: its arguments plus kobot's pools (a preview reserves nothing).
    `allow_local_hosts` is the test-only setting that lets hosts be this machine."""
    fields = set(ClusterSpec.model_fields) - {"name"}
    spec = ClusterSpec.model_validate(
        {"name": cluster, **{key: value for key, value in params.items() if key in fields}},
        context={ALLOW_LOCAL_HOSTS: allow_local_hosts},
    )
    return plan_cluster(spec=spec, pools=IpPools(redis), reserve=reserve)


def _node(
    *, spec: ClusterSpec, name: str, role: NodeRole, zone: str | None, address: str, gpu: bool
) -> NodePlan:
    size = spec.node_sizes[role]
    return NodePlan(
        name=name,
        role=role,
        zone=zone,
        address=address,
        cpu=size.cpu,
        memory_mb=size.memory_mb,
        disk_gb=size.disk_gb,
        gpu=gpu,
    )


def _zones(*, spec: ClusterSpec, pools: IpPools | None) -> tuple[str, ...]:
    """The spec's zones; an IaaS spec without zones uses every zone that has a pool."""
    if spec.zones or not spec.provider.creates_machines:
        return spec.zones
    zones = tuple(_require_pools(pools).zones())
    if not zones:
        raise ValueError(f"provider={spec.provider.value} needs IP pools, and none is configured")
    return zones


def _zone(zones: tuple[str, ...], index: int) -> str | None:
    """Round-robin per role: master-1 in the first zone, master-2 in the second, and so on."""
    return zones[(index - 1) % len(zones)] if zones else None


def _gpu(spec: ClusterSpec, role: NodeRole, index: int) -> bool:
    return role is NodeRole.WORKER and index <= spec.gpu_workers


def _index(node: NodePlan) -> int:
    return int(node.name.rsplit("-", 1)[1])


def _names(nodes: Sequence[NodePlan]) -> str:
    return ", ".join(f"{node.name} ({node.address}{', ' + node.zone if node.zone else ''})" for node in nodes)


def _canonical(value: Any) -> str:
    """Sorted keys, no spaces: the same plan always gives the same bytes, so the same hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _require_pools(pools: IpPools | None) -> IpPools:
    if pools is None:
        raise ValueError("this provider needs kobot's IP pools to address its machines")
    return pools
