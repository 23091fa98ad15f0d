"""Cluster records: spec, state, nodes and history, persisted in Redis so they survive a restart."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import Field
from redis import Redis

from kobot import keys
from kobot.clock import utcnow
from kobot.cluster_spec import ClusterShape, NodeRole
from kobot.deferred_models import DeferredModel
from kobot.errors import NotFoundError
from kobot.store import synced

HISTORY_MAX = 200
"""History entries kept per cluster record."""


class ClusterState(str, Enum):
    PENDING = "pending"
    CREATING = "creating"
    RUNNING = "running"
    FAILED = "failed"
    UPGRADING = "upgrading"
    DELETING = "deleting"


class NodeState(str, Enum):
    """How far kobot has brought a node: planned, its machine provisioned, installed and Ready, or only
    checked (a run without install stages)."""

    PLANNED = "planned"
    PROVISIONED = "provisioned"
    READY = "ready"
    CHECKED = "checked"

    def __str__(self) -> str:
        """The value, as records and chat text spell it (not `NodeState.READY`)."""
        return self.value


class NodeRecord(DeferredModel):
    name: str
    role: NodeRole
    address: str
    zone: str | None = None
    state: NodeState = NodeState.PLANNED
    gpu: bool = False
    """A worker with an NVIDIA GPU: its inventory says `gpu: true`, so it gets the driver, the container
    toolkit and containerd's nvidia runtime, and the `kobot.io/gpu` label the device plugin runs on."""


class HistoryEntry(DeferredModel):
    at: datetime = Field(default_factory=utcnow)
    job_id: str | None = None
    kind: str
    outcome: str


class ImportedCluster(DeferredModel):
    """What kobot read from the API of a cluster it did not build, when it was imported."""

    at: datetime = Field(default_factory=utcnow)
    by: str
    """Who imported it (an identity key, `cli:<user>` or `api:<name>`)."""
    server: str
    """The API server address of the kubeconfig (no credentials)."""
    network_plugin: str | None = None
    """calico, flannel, cilium, ... as its DaemonSets show; None when none was recognised."""
    pod_cidrs: list[str] = Field(default_factory=list)
    """The nodes' pod ranges (spec.podCIDR)."""
    ssh_user: str | None = None
    """Set once kobot proved SSH to every node as this account with a private key kept encrypted among
    the cluster's secrets: then the jobs that only read or renew run there; None: API only."""


class ClusterRecord(DeferredModel):
    name: str
    provider: str = "manual"
    version: str | None = None
    state: ClusterState = ClusterState.PENDING
    creating_job: str | None = None
    """The create job that owns a cluster in CREATING; another create must not take it over."""
    spec: ClusterShape = Field(default_factory=ClusterShape)
    """What was asked at create, kept current by Day 2 (counts, version); replaced whole, never edited."""
    nodes: list[NodeRecord] = Field(default_factory=list)
    imported: ImportedCluster | None = None
    """Set for a cluster kobot did not build: kobot holds its kubeconfig only, no hosts' SSH access and no
    Terraform state, so only what the API can do is offered (commands.handlers.submit refuses the rest)."""
    history: list[HistoryEntry] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    def count(self, role: str) -> int:
        return sum(1 for node in self.nodes if node.role == role)

    def add_history(self, entry: HistoryEntry) -> None:
        self.history.append(entry)
        del self.history[:-HISTORY_MAX]


class ClusterStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    def get(self, name: str) -> ClusterRecord | None:
        raw: bytes | None = synced(self._redis.get(keys.cluster_record(name)))
        return None if raw is None else ClusterRecord.model_validate_json(raw)

    def require(self, name: str) -> ClusterRecord:
        record = self.get(name)
        if record is None:
            known = ", ".join(self.names()) or "none yet"
            raise NotFoundError(f"there is no cluster {name} (known: {known})")
        return record

    def save(self, record: ClusterRecord) -> None:
        record.updated_at = utcnow()
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(keys.cluster_record(record.name), record.model_dump_json())
        pipe.sadd(keys.CLUSTERS_INDEX, record.name)
        pipe.execute()

    def delete(self, name: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(keys.cluster_record(name))
        pipe.srem(keys.CLUSTERS_INDEX, name)
        pipe.execute()

    def names(self) -> list[str]:
        return sorted(member.decode() for member in synced(self._redis.smembers(keys.CLUSTERS_INDEX)))

    def all(self) -> list[ClusterRecord]:
        return [record for name in self.names() if (record := self.get(name)) is not None]
