"""What a cluster is: the spec a `create` asks for, its enums and defaults (Day 0's input).

A record type on the ground floor: the planner (workers.plan) turns it into machines, the cluster
record keeps it, commands validate it; none of them owns it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from enum import Enum
from typing import Literal, Self

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from kobot import automation_values, validation
from kobot.deferred_models import DeferredModel
from kobot.validation import SUPPORTED_KUBERNETES_VERSIONS

_FILE_PATH = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----\n(?:[A-Za-z0-9+/=]{1,76}\n)+-----END CERTIFICATE-----\n?"
)
_CA_CERTIFICATE_MAX_CHARS = 8192
"""A repository CA certificate longer than this is not one certificate: refused."""

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

    def __str__(self) -> str:
        """The value, as records, inventories and chat text spell it (not `NodeRole.MASTER`)."""
        return self.value


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


class NodeSize(DeferredModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu: int = Field(ge=1, le=512)
    memory_mb: int = Field(ge=1024, le=4 * 1024 * 1024)
    disk_gb: int = Field(ge=20, le=64 * 1024)


DEFAULT_NODE_SIZES: Mapping[NodeRole, NodeSize] = {
    NodeRole.MASTER: NodeSize(cpu=4, memory_mb=8192, disk_gb=80),
    NodeRole.WORKER: NodeSize(cpu=8, memory_mb=16384, disk_gb=100),
}
"""Sizes of created machines unless the spec says otherwise (kubeadm needs 2 CPUs, etcd wants room)."""


class OfflineRepository(DeferredModel):
    """Where hosts without internet get packages, images and binaries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    package_repo_url: str
    image_registry: str
    files_url: str
    file_sha256: dict[str, str] = Field(default_factory=dict)
    """Path under `files_url` → the sha256 the bundle build verified: what the roles check a download
    against where upstream publishes no checksum (the Tigera operator manifest)."""
    ca_certificate: str | None = None
    """PEM of the CA the registry's TLS certificate chains to (kobot's repository CA): public, installed
    on every node for containerd's `ca =`. None: the registry is reached over plain HTTP."""

    @field_validator("file_sha256")
    @classmethod
    def _checksums(cls, value: dict[str, str]) -> dict[str, str]:
        for path, digest in value.items():
            if not _FILE_PATH.fullmatch(path) or ".." in path.split("/") or not _SHA256_HEX.fullmatch(digest):
                raise ValueError(f"file_sha256 entry {path!r} must map a relative path to 64 hex digits")
        return value

    @field_validator("ca_certificate")
    @classmethod
    def _ca_certificate(cls, value: str | None) -> str | None:
        if value is not None and (
            len(value) > _CA_CERTIFICATE_MAX_CHARS or not _PEM_CERTIFICATE.fullmatch(value)
        ):
            raise ValueError("ca_certificate must be one PEM certificate (-----BEGIN CERTIFICATE----- ...)")
        return value

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


class ClusterShape(DeferredModel):
    """What a cluster record keeps of its spec: the same fields as `ClusterSpec`, checked for type only.

    A record outlives the rules it was created under: Day 2 changes its counts and version, and what kobot
    supports may narrow later, so loading a record never applies create's policy checks (supported
    versions, hosts per node, local addresses). Every value is checked again where it is written into an
    inventory or a Terraform variable (`kobot.automation_values`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    provider: Provider = Provider.MANUAL
    masters: int = Field(default=3, ge=0)
    workers: int = Field(default=3, ge=0)
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

    @field_validator("node_sizes")
    @classmethod
    def _sizes(cls, value: dict[NodeRole, NodeSize]) -> dict[NodeRole, NodeSize]:
        return {**DEFAULT_NODE_SIZES, **value}


class ClusterSpec(ClusterShape):
    """Everything a user decides about a cluster; validated once, at create, with messages that name the
    field. A recorded cluster keeps it as its `ClusterShape` (`shape()`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    masters: Literal[1, 3, 5] = 3
    workers: int = Field(default=3, ge=0, le=validation.WORKERS_MAX)

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
        if self.api_vip is not None:
            if self.api_vip in self.hosts:
                raise ValueError(f"api_vip {self.api_vip} is also a host; the VIP must be a free address")
            validation.vip_outside_networks(
                api_vip=self.api_vip, pod_cidr=self.pod_cidr, service_cidr=self.service_cidr
            )
        return self

    @property
    def node_count(self) -> int:
        return self.masters + self.workers

    def shape(self, *, api_vip: str | None) -> ClusterShape:
        """What the cluster record keeps: this spec with the VIP the plan reserved."""
        return ClusterShape.model_validate({**self.model_dump(exclude={"name"}), "api_vip": api_vip})
