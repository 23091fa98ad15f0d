"""Cluster life: list, show, plan, create, upgrade, delete."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from commands.definitions.common import Args, BreakGlass, GpuWorkers, Version
from commands.grammar import Arg
from commands.registry import command
from kobot import validation
from kobot.job_records import JobKind
from kobot.risk import Risk

IAAS_PROVIDERS = ("vsphere", "openstack")
"""Providers where kobot creates the machines itself (Terraform), so a create cannot be undone cheaply."""


@command(
    "cluster.list",
    aliases=(
        "list clusters",
        "list cluster",
        "clusters",
        "cluster list",
        "show clusters",
        "ls clusters",
        "集群列表",
        "列出集群",
        "查看集群列表",
        "所有集群",
        "查看所有集群",
    ),
    risk=Risk.READ,
    summary="List the clusters kobot manages, with their state and version.",
    examples=("list clusters", "集群列表"),
)
class ClusterListArgs(Args):
    """No arguments."""


@command(
    "cluster.show",
    aliases=(
        "show cluster",
        "show",
        "describe cluster",
        "describe",
        "cluster info",
        "cluster status",
        "查看集群",
        "集群详情",
        "集群状态",
        "集群信息",
        "查看",
    ),
    risk=Risk.READ,
    summary="Show one cluster: nodes, version, network, last jobs.",
    examples=("show prod", "describe cluster prod", "查看集群 prod"),
    cluster="required",
)
class ClusterShowArgs(Args):
    """No arguments besides the cluster."""


class ClusterLayout(Args):
    """What a cluster is made of. Hosts are listed masters first, then workers."""

    masters: Annotated[
        int,
        AfterValidator(validation.masters),
        Arg(names=("master", "control-plane", "主节点", "控制节点", "管理节点"), kind="1, 3 or 5"),
        Field(description="control-plane nodes (they also run etcd)"),
    ] = 3
    workers: Annotated[
        int,
        Field(ge=0, le=validation.WORKERS_MAX, description="worker nodes"),
        Arg(names=("worker", "工作节点", "计算节点")),
    ] = 3
    gpu_workers: GpuWorkers = 0
    provider: Annotated[
        Literal["manual", "vsphere", "openstack"],
        Arg(
            names=("platform", "iaas", "提供方", "平台", "云平台"),
            synonyms={"手动": "manual", "自有主机": "manual", "物理机": "manual", "bare-metal": "manual"},
        ),
        Field(description="manual: machines you list in hosts; vsphere/openstack: kobot creates them"),
    ] = "manual"
    version: Version = validation.DEFAULT_KUBERNETES_VERSION
    cni: Annotated[
        Literal["flannel", "calico"],
        Arg(names=("network-plugin", "network_plugin", "plugin", "网络插件", "网络", "网络组件")),
        Field(description="pod network plugin"),
    ] = "calico"
    pod_cidr: Annotated[
        str,
        AfterValidator(partial(validation.cidr, what="pod_cidr")),
        Arg(names=("pods", "pod-network", "pod网段", "容器网段"), kind="network like 10.244.0.0/16"),
        Field(description="addresses for pods; must not overlap service_cidr"),
    ] = "10.244.0.0/16"
    service_cidr: Annotated[
        str,
        AfterValidator(partial(validation.cidr, what="service_cidr")),
        Arg(
            names=("services", "service-network", "service网段", "服务网段"), kind="network like 10.96.0.0/12"
        ),
        Field(description="addresses for services"),
    ] = "10.96.0.0/12"
    hosts: Annotated[
        list[str],
        AfterValidator(validation.host_list_in_context),
        Arg(
            names=("host", "machines", "ips", "主机", "机器", "主机列表"),
            kind="IPs or hostnames, comma separated",
        ),
        Field(description="provider=manual only: one address per node, masters first"),
    ] = Field(default_factory=list)
    zones: Annotated[
        list[str],
        AfterValidator(validation.zone_list),
        Arg(names=("zone", "az", "可用区", "区域"), kind="names, comma separated"),
        Field(description="vsphere/openstack only: spread nodes over these zones"),
    ] = Field(default_factory=list)
    api_vip: Annotated[
        str | None,
        AfterValidator(validation.api_vip),
        Arg(names=("vip", "api-vip", "apiserver-vip", "虚拟ip", "虚拟IP", "VIP"), kind="a free IP address"),
        Field(
            description="the API's virtual address (keepalived+haproxy); needed with 3 or 5 masters on your "
            "own hosts; vsphere/openstack reserve one from the pool when not given"
        ),
    ] = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        validation.cidrs_disjoint(pod_cidr=self.pod_cidr, service_cidr=self.service_cidr)
        nodes = self.masters + self.workers
        if self.hosts and self.provider != "manual":
            raise validation.ArgValueError(
                f"hosts are only for provider=manual; {self.provider} creates its own machines (drop hosts=)"
            )
        if self.hosts and len(self.hosts) != nodes:
            raise validation.ArgValueError(
                f"{len(self.hosts)} hosts given for masters={self.masters} + workers={self.workers} "
                f"= {nodes} nodes; list exactly {nodes}, masters first"
            )
        if self.zones and self.provider == "manual":
            raise validation.ArgValueError("zones are only for provider=vsphere or openstack")
        if self.gpu_workers > self.workers:
            raise validation.ArgValueError(
                f"gpu_workers={self.gpu_workers} but only workers={self.workers}: "
                "GPU workers are some of the workers (the first ones)"
            )
        if self.api_vip is not None:
            if self.api_vip in self.hosts:
                raise validation.ArgValueError(
                    f"api_vip {self.api_vip} is also a host; the VIP must be a free address"
                )
            validation.vip_outside_networks(
                api_vip=self.api_vip, pod_cidr=self.pod_cidr, service_cidr=self.service_cidr
            )
        return self


def _create_risk(args: ClusterCreateArgs) -> Risk:
    # a dry run builds and pays for nothing, so it never waits for the approval a real IaaS create needs;
    # it still runs as a job under `cluster.create` (Ansible check mode on the hosts, Terraform plan with
    # the provider's credentials), so it needs the same right: "change", as `plan cluster` on IaaS
    if args.dry_run:
        return Risk.CHANGE
    return Risk.RISKY if args.provider in IAAS_PROVIDERS else Risk.CHANGE


def _plan_risk(args: ClusterLayout) -> Risk:
    # an IaaS plan runs Terraform with the provider's credentials: not for every viewer
    return Risk.CHANGE if args.provider in IAAS_PROVIDERS else Risk.READ


@command(
    "cluster.plan",
    aliases=(
        "plan cluster",
        "plan",
        "plan create",
        "preview cluster",
        "规划集群",
        "集群规划",
        "预览集群",
        "规划",
    ),
    risk=Risk.CHANGE,
    risk_rule=_plan_risk,
    summary="Show what `create cluster` would build, without building anything.",
    examples=("plan cluster prod masters=3 workers=5 provider=vsphere", "规划集群 prod 主节点=1 工作节点=2"),
    cluster="required",
)
class ClusterPlanArgs(ClusterLayout):
    """Same arguments as create; hosts are optional here. Risk: read with provider=manual; change with
    vsphere or openstack, because the plan then asks Terraform, with the provider's credentials."""


@command(
    "cluster.create",
    aliases=("create cluster", "create", "new cluster", "make cluster", "创建集群", "新建集群", "创建"),
    risk=Risk.RISKY,
    risk_rule=_create_risk,
    summary="Create a cluster on your machines (manual) or on vSphere/OpenStack.",
    examples=(
        "create cluster prod masters=3 workers=5 provider=vsphere version=1.31.4",
        "create cluster dev masters=1 workers=2 hosts=10.0.0.1,10.0.0.2,10.0.0.3",
        "创建集群 prod 主节点=3 工作节点=5 平台=openstack",
        "创建集群 test 主节点=1 工作节点=1 主机=10.0.0.1,10.0.0.2 网络插件=flannel",
        "create cluster dev masters=1 workers=2 hosts=10.0.0.1,10.0.0.2,10.0.0.3 dry_run=true",
        "创建集群 dev 主节点=1 工作节点=1 主机=10.0.0.1,10.0.0.2 试运行",
    ),
    cluster="required",
    job_kind=JobKind.CLUSTER_CREATE.value,
)
class ClusterCreateArgs(ClusterLayout):
    """Risk: change with provider=manual; risky (needs approval) with vsphere or openstack,
    because kobot then creates and pays for machines. provider=manual needs hosts: one per node.
    With dry_run the job changes nothing and records nothing: preflight runs for real, every install
    stage in Ansible check mode, and on vsphere/openstack Terraform only plans; its final message says
    what a real run would change. A dry run needs no approval, only the right to create."""

    dry_run: Annotated[
        bool,
        Arg(names=("dry-run", "dryrun", "试运行", "演练", "预演")),
        Field(
            description="rehearse the create: preflight for real, the rest in check mode (Terraform plan "
            "only); nothing is changed or recorded, no approval needed"
        ),
    ] = False
    break_glass: BreakGlass = None


@command(
    "cluster.upgrade",
    aliases=("upgrade cluster", "upgrade", "upgrade kubernetes", "升级集群", "升级", "升级版本"),
    risk=Risk.RISKY,
    summary="Upgrade Kubernetes: etcd snapshot first, control plane one by one, workers in drained batches.",
    examples=("upgrade prod 1.32.1", "upgrade prod to 1.32.1", "升级 prod 1.32.1"),
    cluster="required",
    job_kind=JobKind.CLUSTER_UPGRADE.value,
)
class ClusterUpgradeArgs(Args):
    """What kubeadm accepts, refused before approval and checked again by the job before it touches a
    node: newer than the running version, at most one minor ahead (from 1.30 to 1.32 the answer names
    the path, 1.30 → 1.31 → 1.32, and the command to run first); control plane before any kubelet; and
    with an offline repository in the cluster's spec, only a kubeadm version its package index lists."""

    version: Annotated[
        Version,
        Arg(
            names=("ver", "kubernetes", "k8s", "to", "版本", "到"),
            positional=True,
            shape=r"v?\d+\.\d+(\.\d+)*",
            kind="1.N.P",
        ),
    ]
    break_glass: BreakGlass = None


@command(
    "cluster.delete",
    aliases=(
        "delete cluster",
        "destroy cluster",
        "remove cluster",
        "tear down cluster",
        "删除集群",
        "销毁集群",
    ),
    risk=Risk.RISKY,
    summary="Delete a cluster: its nodes are reset (manual) or destroyed (vsphere/openstack).",
    examples=("delete cluster prod", '删除集群 prod --break-glass "replaced by prod-2"'),
    cluster="required",
    job_kind=JobKind.CLUSTER_DELETE.value,
)
class ClusterDeleteArgs(Args):
    """Nothing to choose: the whole cluster goes. Take a backup first if you may need its data."""

    break_glass: BreakGlass = None
