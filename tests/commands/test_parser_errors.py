"""Bad input gets a clear answer: each message names what was wrong and what is allowed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from commands.parser import parse
from commands.registry import typed_args
from kobot import defaults
from kobot.errors import CommandError


def refused(text: str, *, default_cluster: str | None = None) -> CommandError:
    with pytest.raises(CommandError) as caught:
        parse(text, default_cluster=default_cluster)
    return caught.value


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("creat cluster prod", "create cluster prod"),
        ("lst clusters", "list clusters"),
        ("scael workers 5 on prod", "scale workers 5 on prod"),
        ("创见集群 prod", "创建集群 prod"),
        ("retyr job 42", "retry job 42"),
    ],
)
def test_unknown_command_suggests_the_corrected_line(text: str, suggestion: str) -> None:
    error = refused(text)
    assert error.user_message.startswith("I don't know the command")
    assert "help" in error.user_message
    assert error.suggestions[0] == suggestion


def test_gibberish_gets_no_suggestion_but_points_to_help() -> None:
    error = refused("qwxz plonk")
    assert error.suggestions == []
    assert "Say `help`" in error.user_message


@pytest.mark.parametrize("text", ["", "   ", "<@U0123ABC>", "@kobot", "。"])
def test_empty_command_points_to_help(text: str) -> None:
    assert refused(text).suggestions == ["help"]


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("create cluster prod mastrs=3", "masters=3"),
        ("create cluster prod --wokers 5", "workers=5"),
        ("create cluster prod 主节=3", "masters=3"),
        ("scale workers on prod cuont=3", "count=3"),
    ],
)
def test_unknown_argument_suggests_and_lists_allowed(text: str, suggestion: str) -> None:
    error = refused(text)
    assert "has no argument" in error.user_message
    assert "Allowed: masters, workers" in error.user_message or "Allowed: count, delta" in error.user_message
    assert error.suggestions[0] == suggestion


def test_unknown_argument_without_close_match_lists_allowed() -> None:
    error = refused("delete cluster prod size=blue")
    assert error.user_message == "`delete cluster` has no argument 'size'. Allowed: break_glass, cluster."
    assert error.suggestions == []


@pytest.mark.parametrize(
    ("text", "message", "suggestions"),
    [
        (
            "create cluster prod provider=vsphre",
            "provider must be one of manual | vsphere | openstack, got 'vsphre'",
            ["provider=vsphere"],
        ),
        (
            "create cluster prod provider=aws",
            "provider must be one of manual | vsphere | openstack, got 'aws'",
            [],
        ),
        (
            "create cluster prod provider=vsphere masters=4",
            "masters must be 1, 3 or 5 (an odd count keeps etcd's majority), got 4",
            [],
        ),
        (
            "create cluster prod provider=vsphere masters=three",
            "masters must be a whole number, got 'three'",
            [],
        ),
        ("create cluster prod provider=vsphere workers=501", "workers must be from 0 to 500, got 501", []),
        ("create cluster prod provider=vsphere workers=-1", "workers must be from 0 to 500, got -1", []),
        (
            "create cluster prod provider=vsphere version=1.28.3",
            "version 1.28.3 is not supported; supported: 1.29.0–1.29.15, 1.30.0–1.30.14, 1.31.0–1.31.12, "
            "1.32.0–1.32.8",
            [],
        ),
        ("create cluster prod provider=vsphere version=1.31", "version '1.31' is not of the form 1.N.P", []),
        ("create cluster prod provider=vsphere version=1.31.99", "version 1.31.99 is not supported", []),
        (
            "create cluster prod provider=vsphere cni=weave",
            "cni must be one of flannel | calico, got 'weave'",
            [],
        ),
        (
            "create cluster prod provider=vsphere pod_cidr=10.96.0.0/16",
            "pod_cidr 10.96.0.0/16 overlaps service_cidr 10.96.0.0/12; pods and services need own ranges",
            [],
        ),
        (
            "create cluster prod provider=vsphere pod_cidr=10.244.0.1/16",
            "pod_cidr '10.244.0.1/16' has host bits set; did you mean 10.244.0.0/16?",
            ["pod_cidr=10.244.0.0/16"],
        ),
        (
            "create cluster prod provider=vsphere service_cidr=banana",
            "service_cidr 'banana' is not a network: give an address and a prefix",
            [],
        ),
        (
            "create cluster prod provider=vsphere service_cidr=10.300.0.0/12",
            "service_cidr '10.300.0.0/12' is not a valid network like 10.244.0.0/16",
            [],
        ),
        (
            "create cluster prod masters=1 workers=1 hosts=10.0.0.1",
            "1 hosts given for masters=1 + workers=1 = 2 nodes; list exactly 2, masters first",
            [],
        ),
        (
            "create cluster prod masters=1 workers=1 hosts=10.0.0.1,10.0.0.1",
            "host 10.0.0.1 is listed twice",
            [],
        ),
        (
            "create cluster prod masters=1 workers=1 hosts=bad_host,10.0.0.1",
            "host 'bad_host' is not an IPv4/IPv6 address or a DNS name",
            [],
        ),
        (
            "create cluster prod masters=1 workers=0 hosts=999.1.1.1",
            "host '999.1.1.1' is not an IPv4/IPv6 address or a DNS name",
            [],
        ),
        (
            "create cluster prod provider=vsphere hosts=10.0.0.1",
            "hosts are only for provider=manual; vsphere creates its own machines",
            [],
        ),
        (
            "create cluster prod masters=1 workers=0 hosts=10.0.0.1 zones=a",
            "zones are only for provider=vsphere",
            [],
        ),
        ("scale workers 5 +2 on prod", "say either a target count (scale workers 5 on prod) or a change", []),
        ("scale workers on prod", "say either a target count", []),
        ("scale workers +0 on prod", "delta 0 changes nothing", []),
        ("scale workers 600 on prod", "count must be from 0 to 500, got 600", []),
        ("job status 0", "job '0' is not a job number: give a positive number like 42 or #42", []),
        ("job status job=abc", "job 'abc' is not a job number", []),
        ("cancel job", "job is required", []),
        ("upgrade prod", "version is required (1.N.P)", []),
        ("remove node Worker_3 from prod", "node name 'Worker_3' is not a valid name", []),
        ("remove node from prod", "node is required", []),
        ("audit since=yesterday", "since 'yesterday' is not a time span or date", []),
        ("audit since=400d", "since '400d' must be between 1m and 366d", []),
        (
            "notify prod events=job,spam",
            "events must be one of job | approval | backup | node | certificate | health, got 'spam'",
            [],
        ),
        ("notify prod", "events is required", []),
        (
            "subscribe alerts prod severity=critcal",
            "severity must be one of critical | warning | info, got 'critcal'",
            ["severity=critical"],
        ),
        ("restore etcd prod backup=../../etc/passwd", "backup '../../etc/passwd' is not a backup id", []),
        ('delete cluster prod --break-glass ""', "break_glass needs a value", []),
        ("delete cluster prod --break-glass", "--break-glass needs a value", []),
        ("job status 4 verbose=maybe", "verbose is a flag: say --verbose or verbose=yes/no, got 'maybe'", []),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_values_are_named_with_what_is_allowed(text: str, message: str, suggestions: list[str]) -> None:
    error = refused(text)
    assert message in error.user_message
    assert error.suggestions == suggestions


def test_scale_direction_contradictions_are_refused() -> None:
    assert "adds workers; to remove, say `缩容 <cluster> 工作节点 2`" in refused("扩容 prod -2").user_message
    assert "removes workers; to add" in refused("scale down workers +2 on prod").user_message


def test_a_name_without_its_value_is_explained() -> None:
    assert (
        refused("create cluster prod workers masters=3").user_message
        == "workers needs a value, like workers=3"
    )
    assert refused("扩容 prod 工作节点").user_message == "工作节点 needs a value, like 工作节点=…"


def test_scale_down_takes_one_number() -> None:
    assert refused("缩容 prod 2 -3").user_message == "'缩容' takes one number: how many workers to remove"


def test_add_master_cannot_be_a_worker() -> None:
    assert "adds a master" in refused("add master prod role=worker").user_message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("scale workers 5", "Which cluster? Name it, e.g. `scale workers 5 on prod`"),
        ("remove node worker-3", "Which cluster?"),
        ("备份", "Which cluster?"),
    ],
)
def test_missing_cluster_is_a_clear_error(text: str, message: str) -> None:
    error = refused(text)
    assert message in error.user_message
    assert "bind this channel to one: `use NAME here`" in error.user_message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("show Prod_1", "cluster name 'Prod_1' is not a valid name"),
        ("show cluster=9lives", "cluster name '9lives' must start with a letter"),
        (f"show {'a' * 64}", "is 64 characters long; at most 63 are allowed"),
        ("show prod on dev", "Two clusters given (dev and prod)"),
        ("list clusters on prod", "`list clusters` does not act on a cluster; drop 'prod'"),
        ("whoami prod", "I don't understand 'prod' in `whoami`. Allowed arguments: none."),
    ],
)
def test_bad_clusters_are_named(text: str, message: str) -> None:
    assert message in refused(text).user_message


def test_a_scalar_given_twice_is_refused_not_overwritten() -> None:
    error = refused("create cluster prod provider=vsphere workers=3 工作节点=5")
    assert error.user_message == "workers is given twice (3 and 5); say it once."


def test_stray_word_gets_the_nearest_argument_and_an_example() -> None:
    error = refused("scale workers 5 on prod workrs")
    assert error.user_message == (
        "I don't understand 'workrs' in `scale workers`. "
        "Allowed arguments: count, delta, gpu_workers, break_glass, cluster. "
        "For example: scale workers 5 on prod"
    )
    assert error.suggestions[0] == "count"


def test_unclosed_quote_is_explained() -> None:
    assert 'quote (") is not closed' in refused('delete cluster prod --break-glass "oops').user_message


def test_several_errors_are_all_reported() -> None:
    message = refused("create cluster prod provider=vsphere masters=2 cni=weave").user_message
    assert "masters must be 1, 3 or 5" in message
    assert "cni must be one of flannel | calico" in message


def test_text_longer_than_the_limit_is_refused_before_parsing() -> None:
    text = "scale workers 5 on prod " + "x" * defaults.TEXT_MAX_COMMAND_CHARS
    assert "a command is at most" in refused(text).user_message


def test_help_for_an_unknown_topic_suggests_topics() -> None:
    error = refused("help creat")
    assert error.user_message == "there is no help topic 'creat'; say `help` for the list."
    assert error.suggestions[0] == "help create"


@pytest.mark.parametrize(
    "text",
    [
        "create cluster prod provider=vsphere version=$(reboot)",
        "create cluster prod provider=vsphere; rm -rf /",
        "show prod`id`",
        "backup prod && curl 127.0.0.1",
    ],
)
def test_shell_syntax_is_just_a_bad_value(text: str) -> None:
    """Nothing reaches a shell; such text is refused like any other bad value."""
    refused(text)


def test_local_hosts_pass_the_parser_only_under_the_test_only_setting() -> None:
    text = "create cluster dev masters=1 workers=0 hosts=localhost"
    with pytest.raises(CommandError, match="names this machine"):
        parse(text)
    parsed = parse(text, allow_local_hosts=True)
    assert parsed.args["hosts"] == ["localhost"]
    with pytest.raises(ValidationError, match="names this machine"):
        typed_args(parsed)
    assert typed_args(parsed, allow_local_hosts=True).model_dump()["hosts"] == ["localhost"]
