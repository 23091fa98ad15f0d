"""Chat `kubectl`: the forms it understands (English and 中文), what it refuses, how long output is cut."""

from __future__ import annotations

from typing import get_args

import pytest

from bot.policy.document import PolicyDocument
from bot.policy.models import BUILTIN_ROLE_SPECS, compile_policy
from commands.definitions.inspect import ResourceName
from commands.handlers.inspect import render
from commands.parser import parse
from kobot import defaults
from kobot.access import CLUSTER_READ_PERMISSION, scoped_permission
from kobot.errors import CommandError
from kobot.risk import Risk
from workers.kube_read import KubeReadResult
from workers.kube_tables import RESOURCES


@pytest.mark.parametrize(
    ("text", "command", "args"),
    [
        ("kubectl get pods -n kube-system on prod", "kubectl.get",
         {"resource": "pods", "namespace": "kube-system"}),
        ("kubectl get po -l app=web -A on prod", "kubectl.get",
         {"resource": "pods", "label_selector": ["app=web"], "all_namespaces": True}),
        ('kubectl get pods -l "app=web,tier=front" --field-selector status.phase=Running on prod',
         "kubectl.get",
         {"label_selector": ["app=web", "tier=front"], "field_selector": ["status.phase=Running"]}),
        ("kubectl get deploy api -n shop -o yaml on prod", "kubectl.get",
         {"resource": "deployments", "name": "api", "output": "yaml"}),
        ("kubectl get nodes -o wide on prod", "kubectl.get", {"resource": "nodes", "output": "wide"}),
        ("查看 prod 节点", "kubectl.get", {"resource": "nodes"}),
        ("查看prod节点", "kubectl.get", {"resource": "nodes"}),
        ("查看 prod 容器组 -n shop", "kubectl.get", {"resource": "pods", "namespace": "shop"}),
        ("查看资源 pods 命名空间=kube-system 在 prod", "kubectl.get", {"namespace": "kube-system"}),
        ("describe pod web-1 -n shop on prod", "kubectl.describe", {"resource": "pods", "name": "web-1"}),
        ("kubectl describe node worker-1 on prod", "kubectl.describe", {"resource": "nodes"}),
        ("logs deploy/api -n shop --tail 100 on prod", "kubectl.logs",
         {"target": "deploy/api", "namespace": "shop", "tail": 100}),
        ("kubectl logs web-1 -c nginx -p on prod", "kubectl.logs", {"container": "nginx", "previous": True}),
        ("events on prod", "kubectl.events", {}),
        ("kubectl get events -n shop on prod", "kubectl.events", {"namespace": "shop"}),
        ("查看 prod 事件", "kubectl.events", {}),
        ("top nodes on prod", "kubectl.top", {"resource": "nodes"}),
        ("kubectl top pods -n shop on prod", "kubectl.top", {"resource": "pods", "namespace": "shop"}),
        ("资源用量 节点 在 prod", "kubectl.top", {"resource": "nodes"}),
    ],
)  # fmt: skip
def test_kubectl_forms_parse(text: str, command: str, args: dict[str, object]) -> None:
    parsed = parse(text)
    assert (parsed.command, parsed.cluster, parsed.risk) == (command, "prod", Risk.READ)
    assert {key: parsed.args[key] for key in args} == args


def test_the_cluster_slot_only_takes_a_cluster_word() -> None:
    assert parse("查看 prod").command == "cluster.show"
    assert parse("查看集群 prod").command == "cluster.show"
    assert parse("查看集群列表").command == "cluster.list"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("kubectl get secretz on prod", "'secretz' is not a kind kobot reads; allowed: pods, nodes"),
        ("kubectl get roles on prod", "allowed: pods, nodes"),
        ("kubectl get pods -o yaml on prod", "-o yaml shows one object"),
        ("kubectl get pods -o json on prod", "output must be one of table | wide | yaml"),
        ("kubectl describe pod on prod", "describe names one object"),
        ("logs on prod", "logs of which pod?"),
        ("logs svc/api on prod", "logs come from pods or workloads"),
        ("logs web-1 --tail 100000 on prod", f"tail must be from 1 to {defaults.KUBECTL_LOG_TAIL_MAX}"),
        ("kubectl get pods -n Bad_Name on prod", "'Bad_Name' is no Kubernetes name"),
        ("top services on prod", "top shows nodes or pods, not services"),
        ("kubectl get pods -l app=$(x) on prod", "is no selector"),
    ],
)
def test_kubectl_refusals_name_what_is_allowed(text: str, says: str) -> None:
    with pytest.raises(CommandError) as refused:
        parse(text)
    assert says in refused.value.user_message


def test_the_grammars_kinds_are_the_readers_allow_list() -> None:
    assert set(get_args(ResourceName)) == {kind.plural for kind in RESOURCES}


def test_long_output_is_cut_with_the_count_and_how_to_narrow_it() -> None:
    lines = tuple(f"pod-{i}" for i in range(defaults.KUBECTL_REPLY_LINES_MAX + 25))
    message = render(KubeReadResult(title="65 pods", lines=lines))
    assert message.code is not None and message.code.splitlines() == list(
        lines[: defaults.KUBECTL_REPLY_LINES_MAX]
    )
    assert message.footer is not None and message.footer.startswith(
        "… 25 more lines not shown; narrow it with -n"
    )
    logs = render(KubeReadResult(title="logs", lines=lines, newest_last=True))
    assert logs.code is not None and logs.code.splitlines()[-1] == lines[-1]
    assert logs.footer is not None and "25 earlier lines" in logs.footer
    wide = render(KubeReadResult(title="x", lines=("y" * 1000,)))
    assert wide.code is not None and len(wide.code) == defaults.KUBECTL_LINE_CHARS_MAX


def test_viewers_do_not_read_inside_clusters_and_namespace_grants_stay_in_their_namespace() -> None:
    policy = compile_policy(
        PolicyDocument.model_validate(
            {
                "roles": {
                    "shop-reader": {"commands": ["kubectl:shop"]},
                    "not-system": {"commands": ["*"], "exclude": ["kubectl:kube-system"]},
                }
            }
        ),
        source=None,
    )
    assert CLUSTER_READ_PERMISSION in BUILTIN_ROLE_SPECS["viewer"].exclude
    shop, system, every = (
        scoped_permission(CLUSTER_READ_PERMISSION, scope) for scope in ("shop", "kube-system", "*")
    )

    def grants(role: str, permission: str) -> bool:
        return policy.grants(role, permission=permission, risk=Risk.READ)

    assert not any(grants("viewer", p) for p in (CLUSTER_READ_PERMISSION, shop, every))
    assert all(grants("operator", p) for p in (CLUSTER_READ_PERMISSION, shop, system, every))
    assert grants("shop-reader", CLUSTER_READ_PERMISSION) and grants("shop-reader", shop)
    assert not grants("shop-reader", system) and not grants("shop-reader", every)
    assert grants("not-system", shop) and not grants("not-system", system)
    assert not grants("not-system", every), "reading every namespace would include the excluded one"
    assert grants("viewer", "cluster.show")
