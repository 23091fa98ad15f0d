"""Help is generated from the registry: overview by area, filtered by permission, and per command."""

from __future__ import annotations

import pytest

from commands.catalog import load_commands
from commands.help import AREAS, render_help
from commands.registry import CommandSpec
from kobot.errors import CommandError
from kobot.messages import MessageKind
from kobot.risk import Risk


def test_overview_lists_every_command_grouped_by_area() -> None:
    message = render_help(None)
    assert message.kind is MessageKind.HELP
    body = message.body or ""
    for heading in ("Clusters · 集群", "Nodes · 节点", "Jobs · 任务", "General · 通用"):
        assert heading in body
    for spec in load_commands().values():
        assert spec.summary in body
    assert (
        body.index("Clusters · 集群") < body.index("• create cluster · 创建集群") < body.index("Nodes · 节点")
    )
    assert "• delete cluster · 删除集群: Delete a cluster" in body and "⚠" in body
    assert "help create" in (message.footer or "")


def test_overview_shows_only_allowed_commands() -> None:
    def read_only(spec: CommandSpec) -> bool:
        return spec.risk is Risk.READ

    body = render_help(None, allowed=read_only).body or ""
    assert "list clusters" in body
    assert "delete cluster" not in body
    assert "scale workers" not in body
    assert "Alerts and notices" not in body


def test_overview_when_nothing_is_allowed() -> None:
    assert "You may not run any command here" in (render_help(None, allowed=lambda spec: False).body or "")


def test_command_help_shows_aliases_arguments_risk_and_examples() -> None:
    message = render_help("create")
    text = message.to_text()
    assert message.title == "create cluster · 创建集群"
    fields = {f.label: f.value for f in message.fields}
    assert fields["Command"] == "cluster.create"
    assert "create cluster" in fields["Aliases"] and "新建集群" in fields["别名"]
    assert fields["Risk"].startswith("up to risky")
    assert "• masters (主节点/控制节点/管理节点): 1, 3 or 5, default 3" in text
    assert "• provider (提供方/平台/云平台): manual | vsphere | openstack, default manual" in text
    assert "• workers (工作节点/计算节点): number 0–500, default 3" in text
    assert "supported: 1.29.0–1.29.15" in text
    assert "risky (needs approval) with vsphere or openstack" in text
    assert "create cluster prod masters=3 workers=5 provider=vsphere version=1.31.4" in (message.code or "")


def test_scale_help_states_what_a_number_means() -> None:
    text = render_help("缩容").to_text()
    assert "`缩容 prod 工作节点 2` removes 2 workers (delta -2)" in text
    assert "`scale workers 5 on prod` ends with 5 workers" in text
    assert "• delta (增减/变化): +N or -N" in text


def test_required_arguments_and_flags_are_described() -> None:
    text = render_help("job.status").to_text()
    assert "• job (任务/任务号/编号): job number, 42 or #42, required" in text
    assert "• verbose (详细): flag: --verbose" in text


def test_help_for_a_command_the_user_may_not_run_says_so() -> None:
    message = render_help("delete cluster", allowed=lambda spec: spec.risk is Risk.READ)
    assert "You may not run this command here." in (message.status or "")


def test_help_for_an_area() -> None:
    message = render_help("nodes")
    assert message.title == f"kobot commands: {AREAS['nodes']}"
    assert "remove node" in (message.body or "") and "list clusters" not in (message.body or "")


def test_help_for_an_unknown_topic_raises_with_suggestions() -> None:
    with pytest.raises(CommandError) as caught:
        render_help("scael")
    assert caught.value.suggestions[0] == "help scale"


@pytest.mark.parametrize("spec_id", sorted(load_commands()))
def test_every_command_has_help(spec_id: str) -> None:
    message = render_help(spec_id)
    assert message.fields[0].value == spec_id
    assert message.code
