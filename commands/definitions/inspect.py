"""Read-only `kubectl` inside a cluster: get, describe, logs, events, top.

All five share one permission, `kubectl` (kobot.access.CLUSTER_READ_PERMISSION), which the built-in
viewer role does not hold: seeing kobot's record of a cluster is not seeing inside it. A policy may
grant it per cluster (bindings) and per namespace (`kubectl:NAMESPACE`, see kobot.access).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from commands.definitions.common import Args, optional
from commands.grammar import Arg
from commands.registry import command
from kobot import defaults
from kobot.access import CLUSTER_READ_PERMISSION
from kobot.risk import Risk
from kobot.validation import ArgValueError
from workers.kube_tables import RESOURCES, allowed_text

ResourceName = Literal[
    "pods",
    "nodes",
    "namespaces",
    "services",
    "deployments",
    "statefulsets",
    "daemonsets",
    "replicasets",
    "jobs",
    "cronjobs",
    "ingresses",
    "persistentvolumeclaims",
    "persistentvolumes",
    "events",
    "configmaps",
    "secrets",
]
"""The allow-list as the grammar sees it (tests hold it equal to workers.kube_tables.RESOURCES)."""

RESOURCE_WORDS = {
    word.lower(): kind.plural
    for kind in RESOURCES
    for word in (kind.singular, kind.kind, *kind.names)
    if word.lower() != kind.plural
}
"""Short names, singulars and 中文 for the kinds: `po`, `deploy`, `节点`."""

_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_SELECTOR = re.compile(r"[A-Za-z0-9_./=!, ()-]{1,512}")


def object_name(value: str) -> str:
    """A Kubernetes object or namespace name (DNS-1123 subdomain)."""
    if not _NAME.fullmatch(value):
        raise ArgValueError(f"'{value}' is no Kubernetes name: lowercase letters, digits, '-' and '.'")
    return value


def selectors(values: list[str]) -> list[str]:
    for value in values:
        if not _SELECTOR.fullmatch(value):
            raise ArgValueError(
                f"'{value}' is no selector: like app=web, tier!=db, env in (a,b); quote one with commas"
            )
    return values


Namespace = Annotated[
    str | None,
    AfterValidator(optional(object_name)),
    Arg(names=("n", "-n", "ns", "命名空间", "名字空间"), kind="namespace"),
    Field(description="the namespace; default `default`"),
]
AllNamespaces = Annotated[
    bool,
    Arg(names=("a", "-a", "all", "所有命名空间", "全部命名空间")),
    Field(description="every namespace (-A)"),
]
LabelSelector = Annotated[
    list[str],
    AfterValidator(selectors),
    Arg(names=("l", "-l", "selector", "labels", "标签"), kind="app=web; quote one with commas"),
    Field(description="label selector, as kubectl -l"),
]
FieldSelector = Annotated[
    list[str],
    AfterValidator(selectors),
    Arg(names=("field-selector", "fields", "字段"), kind="status.phase=Running"),
    Field(description="field selector, as kubectl --field-selector"),
]
Resource = Annotated[
    ResourceName | None,
    Arg(positional=True, names=("kind", "type", "资源", "类型"), synonyms=RESOURCE_WORDS),
    Field(description="what to read; short names (po, deploy, svc) and 中文 (节点, 容器组) work too"),
]
ObjectName = Annotated[
    str | None,
    AfterValidator(optional(object_name)),
    Arg(positional=True, shape=r"[a-z0-9][-a-z0-9.]*", names=("object", "名称"), kind="object name"),
    Field(description="one object's name"),
]

_RESOURCE_OF_ALIAS = {
    "查看 {cluster} 节点": "nodes",
    "查看 {cluster} 容器组": "pods",
    "查看 {cluster} pods": "pods",
    "查看 {cluster} 服务": "services",
    "查看 {cluster} 部署": "deployments",
    "查看节点": "nodes",
    "查看容器组": "pods",
    "describe pod": "pods",
    "describe node": "nodes",
    "describe deployment": "deployments",
}
"""Aliases that name the kind themselves (`查看 prod 节点`, `describe pod web-1`)."""


def kind_from_alias(alias: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Fill the kind an alias names; a kind given again in the words must be the same."""
    kind = _RESOURCE_OF_ALIAS.get(alias)
    if kind is None:
        return raw
    given = raw.get("resource")
    if given is not None and given != kind:
        # a bare word after `describe pod` is the object's name, not a second kind
        return raw
    return {**raw, "resource": kind}


def top_kind(value: str) -> str:
    if value not in ("nodes", "pods"):
        raise ArgValueError(f"top shows nodes or pods, not {value}")
    return value


class KubectlScope(Args):
    """Where to read: a namespace or all, selectors."""

    namespace: Namespace = None
    all_namespaces: AllNamespaces = False
    label_selector: LabelSelector = Field(default_factory=list)


@command(
    "kubectl.get",
    aliases=(
        "kubectl get",
        "k get",
        "get",
        "查看资源",
        "获取资源",
        "查看节点",
        "查看容器组",
        "查看 {cluster} 节点",
        "查看 {cluster} 容器组",
        "查看 {cluster} pods",
        "查看 {cluster} 服务",
        "查看 {cluster} 部署",
    ),
    permission=CLUSTER_READ_PERMISSION,
    risk=Risk.READ,
    summary="List objects inside a cluster, like kubectl get (read only; Secret values never shown).",
    examples=(
        "kubectl get pods -n kube-system on prod",
        "kubectl get nodes -o wide on prod",
        'kubectl get pods -l "app=web" --field-selector status.phase=Running -n shop on prod',
        "kubectl get deploy api -n shop -o yaml on prod",
        "查看 prod 节点",
        "查看资源 pods 命名空间=kube-system 在 prod",
    ),
    cluster="required",
    prepare=kind_from_alias,
)
class KubectlGetArgs(KubectlScope):
    resource: Resource = None
    name: ObjectName = None
    field_selector: FieldSelector = Field(default_factory=list)
    output: Annotated[
        Literal["table", "wide", "yaml"],
        Arg(names=("o", "-o", "format", "输出", "格式"), synonyms={"表格": "table", "详细": "wide"}),
        Field(description="table, wide (more columns) or yaml (one named object)"),
    ] = "table"

    @model_validator(mode="after")
    def _readable(self) -> Self:
        if self.resource is None:
            unknown = f"'{self.name}' is not a kind kobot reads; " if self.name else "which kind? "
            raise ArgValueError(f"{unknown}allowed: {allowed_text()}")
        if self.output == "yaml" and self.name is None:
            raise ArgValueError("-o yaml shows one object: name it, e.g. kubectl get deploy api -o yaml")
        return self


@command(
    "kubectl.describe",
    aliases=(
        "kubectl describe",
        "k describe",
        "describe pod",
        "describe node",
        "describe deployment",
        "描述资源",
        "详细查看",
    ),
    permission=CLUSTER_READ_PERMISSION,
    risk=Risk.READ,
    summary="Describe one object inside a cluster, with its events, like kubectl describe.",
    examples=(
        "kubectl describe pod web-1 -n shop on prod",
        "describe node worker-1 on prod",
        "描述资源 node worker-1 在 prod",
    ),
    cluster="required",
    prepare=kind_from_alias,
)
class KubectlDescribeArgs(Args):
    resource: Resource = None
    name: ObjectName = None
    namespace: Namespace = None

    @model_validator(mode="after")
    def _one_object(self) -> Self:
        if self.resource is None:
            unknown = f"'{self.name}' is not a kind kobot reads; " if self.name else "which kind? "
            raise ArgValueError(f"{unknown}allowed: {allowed_text()}")
        if self.name is None:
            raise ArgValueError(f"describe names one object, e.g. kubectl describe {self.resource} NAME")
        return self


@command(
    "kubectl.logs",
    aliases=("kubectl logs", "k logs", "logs", "log", "查看日志", "容器日志", "日志"),
    permission=CLUSTER_READ_PERMISSION,
    risk=Risk.READ,
    summary="Show the last lines of a pod's log (or a workload's first pod), like kubectl logs.",
    examples=(
        "logs deploy/api -n shop --tail 100 on prod",
        "kubectl logs web-1 -c nginx on prod",
        "查看日志 web-1 行数=20 在 prod",
    ),
    cluster="required",
)
class KubectlLogsArgs(Args):
    target: Annotated[
        str | None,
        Arg(
            positional=True,
            shape=r"([a-z]+/)?[a-z0-9][-a-z0-9.]*",
            names=("pod", "容器组"),
            kind="POD or deploy/NAME",
        ),
        Field(description="a pod, or KIND/NAME of a deployment, statefulset, daemonset, replicaset or job"),
    ] = None
    namespace: Namespace = None
    container: Annotated[
        str | None,
        AfterValidator(optional(object_name)),
        Arg(names=("c", "-c", "容器"), kind="container name"),
        Field(description="the container, when the pod has several"),
    ] = None
    tail: Annotated[
        int,
        Field(ge=1, le=defaults.KUBECTL_LOG_TAIL_MAX, description="how many of the last lines"),
        Arg(names=("行数", "lines")),
    ] = defaults.KUBECTL_LOG_TAIL_DEFAULT
    previous: Annotated[
        bool,
        Arg(names=("p", "-p", "上次", "上一次")),
        Field(description="the log of the previous (crashed) container"),
    ] = False

    @model_validator(mode="after")
    def _target(self) -> Self:
        if self.target is None:
            raise ArgValueError("logs of which pod? e.g. logs web-1 or logs deploy/api")
        kind, slash, name = self.target.rpartition("/")
        if slash:
            if RESOURCE_WORDS.get(kind, kind) not in (
                "pods", "deployments", "statefulsets", "daemonsets", "replicasets", "jobs"
            ):  # fmt: skip
                raise ArgValueError(
                    f"logs come from pods or workloads (deploy, sts, ds, rs, job), not '{kind}'"
                )
            object_name(name)
        return self


@command(
    "kubectl.events",
    aliases=(
        "kubectl events",
        "kubectl get events",
        "events",
        "事件",
        "查看事件",
        "集群事件",
        "查看 {cluster} 事件",
    ),
    permission=CLUSTER_READ_PERMISSION,
    risk=Risk.READ,
    summary="Recent events inside a cluster, oldest first, like kubectl events.",
    examples=("events on prod", "kubectl events -n shop on prod", "查看 prod 事件", "事件 -A 在 prod"),
    cluster="required",
)
class KubectlEventsArgs(KubectlScope):
    field_selector: FieldSelector = Field(default_factory=list)


@command(
    "kubectl.top",
    aliases=("kubectl top", "k top", "top", "资源用量", "资源使用", "查看用量"),
    permission=CLUSTER_READ_PERMISSION,
    risk=Risk.READ,
    summary="CPU and memory in use by nodes or pods, from the metrics API, like kubectl top.",
    examples=("top nodes on prod", "kubectl top pods -n shop on prod", "资源用量 节点 在 prod"),
    cluster="required",
)
class KubectlTopArgs(KubectlScope):
    resource: Annotated[
        ResourceName,
        AfterValidator(top_kind),
        Arg(positional=True, synonyms=RESOURCE_WORDS),
        Field(description="nodes or pods"),
    ] = "nodes"
