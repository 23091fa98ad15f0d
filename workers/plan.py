"""Day 0: what a cluster is (`ClusterSpec`) and which machines it needs (`ClusterPlan`).

The plan is pure data: node names, roles, zones, addresses and sizes. Approvals bind to
`ClusterPlan.plan_hash()`, so the same spec and addresses always hash the same.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from redis import Redis

from kobot import automation_values, validation
from kobot.automation_values import ALLOW_LOCAL_HOSTS
from kobot.validation import SUPPORTED_KUBERNETES_VERSIONS
from workers.ippool import IpPools

SUPPORTED_VERSIONS = SUPPORTED_KUBERNETES_VERSIONS
"""Kubernetes minors (and newest patch) kobot can install; one list, shared with the command checks."""


class Provider(str, Enum):
    MANUAL = "manual"
    VSPHERE = "vsphere"
    OPENSTACK = "openstack"

    @property
    def creates_machines(self) -> bool:
        return self is not Provider.MANUAL


class NodeRole(str, Enum):
    MASTER = "master"
    WORKER = "worker"


class Cni(str, Enum):
    FLANNEL = "flannel"
    CALICO = "calico"


class ProxyMode(str, Enum):
    IPVS = "ipvs"
    IPTABLES = "iptables"


class OsFamily(str, Enum):
    ROCKY8 = "rocky8"
    ROCKY9 = "rocky9"
    ALMA8 = "alma8"
    ALMA9 = "alma9"
    UBUNTU2204 = "ubuntu22.04"
    UBUNTU2404 = "ubuntu24.04"


class Arch(str, Enum):
    AMD64 = "amd64"
    ARM64 = "arm64"


class StorageClass(str, Enum):
    NFS = "nfs"
    CEPH_RBD = "ceph-rbd"
    LOCAL = "local"
    VSPHERE_CSI = "vsphere-csi"
    CINDER_CSI = "cinder-csi"


PLATFORM_STORAGE = {StorageClass.VSPHERE_CSI: Provider.VSPHERE, StorageClass.CINDER_CSI: Provider.OPENSTACK}
"""Storage classes that only exist on one IaaS."""


class NodeSize(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu: int = Field(ge=1, le=512)
    memory_mb: int = Field(ge=1024, le=4 * 1024 * 1024)
    disk_gb: int = Field(ge=20, le=64 * 1024)


DEFAULT_NODE_SIZES: Mapping[NodeRole, NodeSize] = {
    NodeRole.MASTER: NodeSize(cpu=4, memory_mb=8192, disk_gb=80),
    NodeRole.WORKER: NodeSize(cpu=8, memory_mb=16384, disk_gb=100),
}
"""Sizes of created machines unless the spec says otherwise (kubeadm needs 2 CPUs, etcd wants room)."""


class OfflineRepository(BaseModel):
    """Where hosts without internet get packages, images and binaries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    package_repo_url: str
    image_registry: str
    files_url: str

    @field_validator("package_repo_url", "files_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value) < 10 or " " in value:
            raise ValueError(f"'{value}' is not an http(s) URL")
        return value.rstrip("/")

    @field_validator("image_registry")
    @classmethod
    def _registry(cls, value: str) -> str:
        host, _, port = value.partition(":")
        validation.host_address(host)
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"image registry '{value}' has a bad port")
        return value


class ClusterSpec(BaseModel):
    """Everything a user decides about a cluster; validated once, with messages that name the field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    provider: Provider = Provider.MANUAL
    masters: Literal[1, 3, 5] = 3
    workers: int = Field(default=3, ge=0, le=validation.WORKERS_MAX)
    zones: tuple[str, ...] = ()
    """Failure domains; masters and workers are spread over them round-robin."""
    version: str = validation.DEFAULT_KUBERNETES_VERSION
    container_manager: Literal["containerd"] = "containerd"
    cni: Cni = Cni.CALICO
    pod_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/12"
    kube_proxy_mode: ProxyMode = ProxyMode.IPVS
    api_vip: str | None = None
    """keepalived+haproxy VIP of a multi-master API; without one every node balances locally."""
    ingress: Literal["traefik"] | None = "traefik"
    storage_classes: tuple[StorageClass, ...] = (StorageClass.LOCAL,)
    gpu_workers: int = Field(default=0, ge=0)
    os: OsFamily = OsFamily.ROCKY9
    arch: Arch = Arch.AMD64
    offline_repo: OfflineRepository | None = None
    node_sizes: dict[NodeRole, NodeSize] = Field(default_factory=lambda: dict(DEFAULT_NODE_SIZES))
    hosts: tuple[str, ...] = ()
    """provider=manual: one address per node, masters first."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return validation.cluster_name(value)

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        return validation.kubernetes_version(value)

    @field_validator("pod_cidr", "service_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        return validation.cidr(value, what="network")

    @field_validator("zones")
    @classmethod
    def _zones(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(validation.zone_list(value))

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        allow_local = automation_values.local_hosts_allowed(info.context)
        return tuple(validation.host_list(value, allow_local=allow_local))

    @field_validator("api_vip")
    @classmethod
    def _vip(cls, value: str | None) -> str | None:
        return None if value is None else validation.host_address(str(ipaddress.ip_address(value.strip())))

    @field_validator("node_sizes")
    @classmethod
    def _sizes(cls, value: dict[NodeRole, NodeSize]) -> dict[NodeRole, NodeSize]:
        return {**DEFAULT_NODE_SIZES, **value}

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        validation.cidrs_disjoint(pod_cidr=self.pod_cidr, service_cidr=self.service_cidr)
        nodes = self.masters + self.workers
        if self.provider is Provider.MANUAL:
            if len(self.hosts) != nodes:
                raise ValueError(
                    f"provider=manual needs hosts: {len(self.hosts)} given for {self.masters} masters + "
                    f"{self.workers} workers = {nodes} nodes, masters first"
                )
        elif self.hosts:
            raise ValueError(
                f"hosts are only for provider=manual; {self.provider.value} creates its machines"
            )
        if self.gpu_workers > self.workers:
            raise ValueError(f"gpu_workers={self.gpu_workers} but only {self.workers} workers")
        for storage in self.storage_classes:
            only_on = PLATFORM_STORAGE.get(storage)
            if only_on is not None and only_on is not self.provider:
                raise ValueError(f"storage class {storage.value} needs provider={only_on.value}")
        if self.api_vip is not None and self.api_vip in self.hosts:
            raise ValueError(f"api_vip {self.api_vip} is also a host; the VIP must be a free address")
        return self

    @property
    def node_count(self) -> int:
        return self.masters + self.workers


class NodePlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    role: NodeRole
    zone: str | None
    address: str
    cpu: int
    memory_mb: int
    disk_gb: int
    gpu: bool = False


class ClusterPlan(BaseModel):
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
        if spec.masters > 1:
            api = f"VIP {self.vip} (keepalived+haproxy)" if self.vip else "a local balancer on every node"
            lines.append(f"API: {spec.masters} masters behind {api}")
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
            lines.append(f"GPU workers: {_names([n for n in self.nodes if n.gpu])}")
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


class ScalePlan(BaseModel):
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
        wanted = {name: zone or "" for name, (_, _, zone) in placed.items()}
        if spec.masters > 1 and vip is None:
            wanted[f"{spec.name}-api-vip"] = zones[0] if zones else ""
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


def plan_scale(
    *,
    plan: ClusterPlan,
    workers: int,
    pools: IpPools | None = None,
    hosts: Sequence[str] = (),
    reserve: bool = True,
) -> ScalePlan:
    """Grow or shrink the workers to `workers`. New workers take the next free numbers (names are
    never reused while the old node exists); shrinking removes the highest-numbered workers first."""
    spec = plan.spec
    if not 0 <= workers <= validation.WORKERS_MAX:
        raise ValueError(f"workers must be between 0 and {validation.WORKERS_MAX}, got {workers}")
    current = plan.workers
    if workers < len(current):
        ordered = sorted(current, key=_index)
        removed = tuple(node.name for node in ordered[workers:])
        kept = tuple(node for node in plan.nodes if node.name not in removed)
        gone = {node.address for node in plan.nodes if node.name in removed}
        new_spec = spec.model_copy(
            update={
                "workers": workers,
                "gpu_workers": min(spec.gpu_workers, workers),
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
            gpu=False,
        )
        for name, i in names.items()
    )
    new_spec = spec.model_copy(update={"workers": workers, "hosts": spec.hosts + tuple(hosts)})
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
