"""The phrasings kobot must understand, English and 中文, as a table: text → command, cluster, args, risk."""

from __future__ import annotations

from typing import Any

import pytest

from commands.parser import parse
from commands.registry import typed_args
from kobot.risk import Risk
from kobot.validation import DEFAULT_KUBERNETES_VERSION

HOSTS8 = ",".join(f"10.0.0.{i}" for i in range(1, 9))

CASES: list[tuple[str, str, str | None, dict[str, Any], Risk]] = [
    # the examples every user sees first
    (
        "create cluster prod masters=3 workers=5 provider=vsphere version=1.31.4",
        "cluster.create",
        "prod",
        {
            "masters": 3,
            "workers": 5,
            "provider": "vsphere",
            "version": "1.31.4",
            "cni": "calico",
            "pod_cidr": "10.244.0.0/16",
            "service_cidr": "10.96.0.0/12",
            "hosts": [],
            "zones": [],
        },
        Risk.RISKY,
    ),
    ("scale workers +2 on prod", "workers.scale", "prod", {"count": None, "delta": 2}, Risk.CHANGE),
    ("scale workers 5 on prod", "workers.scale", "prod", {"count": 5, "delta": None}, Risk.CHANGE),
    ("scale workers -1 on prod", "workers.scale", "prod", {"count": None, "delta": -1}, Risk.RISKY),
    ("扩容 prod 工作节点 5", "workers.scale", "prod", {"count": 5, "delta": None}, Risk.CHANGE),
    ("缩容 prod 工作节点 2", "workers.scale", "prod", {"count": None, "delta": -2}, Risk.RISKY),
    ("缩容 prod 2", "workers.scale", "prod", {"delta": -2}, Risk.RISKY),
    ("scale down workers by 3 on prod", "workers.scale", "prod", {"delta": -3}, Risk.RISKY),
    ("scale workers to 7 on prod", "workers.scale", "prod", {"count": 7}, Risk.CHANGE),
    ("scale workers by +4 on prod", "workers.scale", "prod", {"delta": 4}, Risk.CHANGE),
    ("scale prod workers=0", "workers.scale", "prod", {"count": 0}, Risk.CHANGE),
    ("升级 prod 1.32.1", "cluster.upgrade", "prod", {"version": "1.32.1", "break_glass": None}, Risk.RISKY),
    ("upgrade prod to v1.31.0", "cluster.upgrade", "prod", {"version": "1.31.0"}, Risk.RISKY),
    ("upgrade to 1.30.2 on prod", "cluster.upgrade", "prod", {"version": "1.30.2"}, Risk.RISKY),
    ("备份 prod", "etcd.backup", "prod", {}, Risk.CHANGE),
    ("backup etcd on prod", "etcd.backup", "prod", {}, Risk.CHANGE),
    ("任务状态 42", "job.status", None, {"job": 42, "verbose": False}, Risk.READ),
    ("job status #42 --verbose", "job.status", None, {"job": 42, "verbose": True}, Risk.READ),
    ("取消任务 42", "job.cancel", None, {"job": 42}, Risk.CHANGE),
    ("cancel job #7", "job.cancel", None, {"job": 7}, Risk.CHANGE),
    ("retry job 42", "job.retry", None, {"job": 42}, Risk.CHANGE),
    ("重试任务 #42", "job.retry", None, {"job": 42}, Risk.CHANGE),
    ("delete cluster prod", "cluster.delete", "prod", {"break_glass": None}, Risk.RISKY),
    ("删除集群 prod", "cluster.delete", "prod", {}, Risk.RISKY),
    ("remove node worker-3 from prod", "node.remove", "prod", {"node": "worker-3"}, Risk.RISKY),
    ("删除节点 prod worker-3", "node.remove", "prod", {"node": "worker-3"}, Risk.RISKY),
    ("replace node master-2 on prod", "node.replace", "prod", {"node": "master-2"}, Risk.RISKY),
    ("替换节点 prod 节点=worker-1", "node.replace", "prod", {"node": "worker-1"}, Risk.RISKY),
    ("help create", "help", None, {"topic": "cluster.create"}, Risk.READ),
    ("help create cluster", "help", None, {"topic": "cluster.create"}, Risk.READ),
    ("help scale", "help", None, {"topic": "workers.scale"}, Risk.READ),
    ("help nodes", "help", None, {"topic": "nodes"}, Risk.READ),
    ("帮助", "help", None, {"topic": None}, Risk.READ),
    ("帮助 扩容", "help", None, {"topic": "workers.scale"}, Risk.READ),
    ("帮助 创建集群", "help", None, {"topic": "cluster.create"}, Risk.READ),
    ("list clusters", "cluster.list", None, {}, Risk.READ),
    ("集群列表", "cluster.list", None, {}, Risk.READ),
    ("show prod", "cluster.show", "prod", {}, Risk.READ),
    ("查看集群 prod", "cluster.show", "prod", {}, Risk.READ),
    ("whoami", "whoami", None, {}, Risk.READ),
    ("我是谁", "whoami", None, {}, Risk.READ),
    ("notify prod job here", "notify", "prod", {"events": ["job"]}, Risk.CHANGE),
    ("subscribe alerts prod here", "alerts.subscribe", "prod", {}, Risk.CHANGE),
    # create and plan
    (
        # hosts for provider=manual are checked when the plan is made, so the chat example parses as typed
        "创建集群 prod 主节点=3 工作节点=5",
        "cluster.create",
        "prod",
        {"masters": 3, "workers": 5, "provider": "manual", "hosts": []},
        Risk.CHANGE,
    ),
    (
        "创建集群 prod 主节点=3 工作节点=5 平台=openstack 版本=1.30.14 网络插件=flannel",
        "cluster.create",
        "prod",
        {"masters": 3, "workers": 5, "provider": "openstack", "version": "1.30.14", "cni": "flannel"},
        Risk.RISKY,
    ),
    (
        f"创建集群 prod 主节点=3 工作节点=5 主机={HOSTS8}",
        "cluster.create",
        "prod",
        {"provider": "manual", "hosts": HOSTS8.split(","), "version": DEFAULT_KUBERNETES_VERSION},
        Risk.CHANGE,
    ),
    (
        "create cluster dev masters=1 workers=2 hosts=10.0.0.1, 10.0.0.2, node3.example.com",
        "cluster.create",
        "dev",
        {"hosts": ["10.0.0.1", "10.0.0.2", "node3.example.com"]},
        Risk.CHANGE,
    ),
    (
        "create cluster v6 --masters 1 --workers 1 --hosts fd00::1,fd00::2 --pod-cidr fd10::/64 "
        "--service-cidr fd20::/108",
        "cluster.create",
        "v6",
        {"hosts": ["fd00::1", "fd00::2"], "pod_cidr": "fd10::/64", "service_cidr": "fd20::/108"},
        Risk.CHANGE,
    ),
    (
        "create cluster edge provider=vsphere zones=az-1,az-2 masters: 5 workers: 0",
        "cluster.create",
        "edge",
        {"zones": ["az-1", "az-2"], "masters": 5, "workers": 0},
        Risk.RISKY,
    ),
    ("plan cluster prod masters=1 workers=2", "cluster.plan", "prod", {"masters": 1, "hosts": []}, Risk.READ),
    ("规划集群 prod 主节点=1 工作节点=2", "cluster.plan", "prod", {"workers": 2}, Risk.READ),
    # nodes
    ("add node to prod", "node.add", "prod", {"role": "worker", "host": None}, Risk.CHANGE),
    ("add node prod host=10.0.0.9", "node.add", "prod", {"role": "worker", "host": "10.0.0.9"}, Risk.CHANGE),
    # a master joins etcd: risky, so it needs approval
    ("add master prod 10.0.0.10", "node.add", "prod", {"role": "master", "host": "10.0.0.10"}, Risk.RISKY),
    (
        "添加节点 prod 角色=主节点 主机=node9.example.com",
        "node.add",
        "prod",
        {"role": "master", "host": "node9.example.com"},
        Risk.RISKY,
    ),
    ("添加节点 prod 主节点", "node.add", "prod", {"role": "master"}, Risk.RISKY),
    (
        "add master prod host=10.0.0.10 --first-of-two",
        "node.add",
        "prod",
        {"role": "master", "first_of_two": True},
        Risk.RISKY,
    ),
    (
        "添加节点 prod 主节点 成对第一台",
        "node.add",
        "prod",
        {"role": "master", "first_of_two": True},
        Risk.RISKY,
    ),
    # etcd restore
    (
        "restore etcd prod backup=prod-20250131-0200",
        "etcd.restore",
        "prod",
        {"backup": "prod-20250131-0200"},
        Risk.RISKY,
    ),
    ("restore etcd on prod from snap-1", "etcd.restore", "prod", {"backup": "snap-1"}, Risk.RISKY),
    ("恢复 prod prod-20250131-0200", "etcd.restore", "prod", {"backup": "prod-20250131-0200"}, Risk.RISKY),
    # audit, alerts, notify
    ("audit", "audit", None, {"since": None}, Risk.READ),
    ("audit prod 2d", "audit", "prod", {"since": "2d"}, Risk.READ),
    ("audit since=1H", "audit", None, {"since": "1h"}, Risk.READ),
    ("审计 prod 时间=2025-01-31", "audit", "prod", {"since": "2025-01-31"}, Risk.READ),
    ("subscribe alerts prod", "alerts.subscribe", "prod", {"severity": "warning"}, Risk.CHANGE),
    (
        "subscribe alerts prod severity=critical",
        "alerts.subscribe",
        "prod",
        {"severity": "critical"},
        Risk.CHANGE,
    ),
    ("订阅告警 prod 级别=严重", "alerts.subscribe", "prod", {"severity": "critical"}, Risk.CHANGE),
    ("unsubscribe alerts prod", "alerts.unsubscribe", "prod", {"severity": None}, Risk.CHANGE),
    ("退订告警 prod info", "alerts.unsubscribe", "prod", {"severity": "info"}, Risk.CHANGE),
    ("notify prod events=job,backup", "notify", "prod", {"events": ["job", "backup"]}, Risk.CHANGE),
    ("notify prod job node job", "notify", "prod", {"events": ["job", "node"]}, Risk.CHANGE),
    (
        "notify prod all",
        "notify",
        "prod",
        {"events": ["job", "approval", "backup", "node", "certificate", "health"]},
        Risk.CHANGE,
    ),
    ("通知 prod 事件=任务,审批", "notify", "prod", {"events": ["job", "approval"]}, Risk.CHANGE),
    # break glass on risky commands
    (
        'delete cluster prod --break-glass "customer data leak, wipe now"',
        "cluster.delete",
        "prod",
        {"break_glass": "customer data leak, wipe now"},
        Risk.RISKY,
    ),
    (
        "remove node worker-3 from prod break_glass=disk-on-fire",
        "node.remove",
        "prod",
        {"break_glass": "disk-on-fire"},
        Risk.RISKY,
    ),
    (
        "缩容 prod 工作节点 1 紧急原因='节点 损坏'",
        "workers.scale",
        "prod",
        {"delta": -1, "break_glass": "节点 损坏"},
        Risk.RISKY,
    ),
    # --help on any command answers with that command's help
    ("create cluster --help", "help", None, {"topic": "cluster.create"}, Risk.READ),
    ("缩容 -h", "help", None, {"topic": "workers.scale"}, Risk.READ),
]


@pytest.mark.parametrize(("text", "command", "cluster", "args", "risk"), CASES, ids=[c[0] for c in CASES])
def test_parse_understands(
    text: str, command: str, cluster: str | None, args: dict[str, Any], risk: Risk
) -> None:
    parsed = parse(text)
    assert parsed.command == command
    assert parsed.cluster == cluster
    assert {key: parsed.args[key] for key in args} == args
    assert parsed.risk is risk


def test_defaults_are_filled_and_args_are_json() -> None:
    parsed = parse("create cluster prod provider=openstack")
    assert parsed.args == {
        "masters": 3,
        "workers": 3,
        "provider": "openstack",
        "version": DEFAULT_KUBERNETES_VERSION,
        "cni": "calico",
        "pod_cidr": "10.244.0.0/16",
        "service_cidr": "10.96.0.0/12",
        "hosts": [],
        "zones": [],
        "api_vip": None,
        "gpu_workers": 0,
        "dry_run": False,
        "break_glass": None,
    }
    again = type(parsed).model_validate_json(parsed.model_dump_json())
    assert again == parsed
    assert typed_args(again).model_dump(mode="json") == parsed.args


@pytest.mark.parametrize(
    ("text", "cluster"),
    [
        ("scale workers 5", "bound"),
        ("扩容 工作节点 5", "bound"),
        ("remove node worker-3", "bound"),
        ("upgrade 1.32.1", "bound"),
        ("备份", "bound"),
        ("show", "bound"),
        ("show prod", "prod"),
        ("remove node prod worker-3", "prod"),
        ("scale workers 5 on prod", "prod"),
        ("notify job", "bound"),
    ],
)
def test_default_cluster_fills_only_a_missing_cluster(text: str, cluster: str) -> None:
    assert parse(text, default_cluster="bound").cluster == cluster


def test_default_cluster_does_not_narrow_commands_where_the_cluster_is_optional() -> None:
    assert parse("audit 1h", default_cluster="bound").cluster is None


def test_default_cluster_leaves_node_name_alone() -> None:
    parsed = parse("remove node worker-3", default_cluster="bound")
    assert parsed.args["node"] == "worker-3"


def test_longest_alias_phrase_wins() -> None:
    assert parse("show clusters").command == "cluster.list"
    assert parse("show prod").command == "cluster.show"
    assert parse("取消订阅告警 prod").command == "alerts.unsubscribe"
    assert parse("取消任务 3").command == "job.cancel"
    assert parse("缩容工作节点 prod 2").args["delta"] == -2


def test_command_id_works_as_a_phrase() -> None:
    parsed = parse("workers.scale prod count=4")
    assert (parsed.command, parsed.args["count"]) == ("workers.scale", 4)
