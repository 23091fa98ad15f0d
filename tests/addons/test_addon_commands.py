"""The addon commands' grammar: an addon word the catalog does not hold is answered with the names it
does hold (and the nearest one), never taken for a second cluster."""

from __future__ import annotations

import pytest

from commands.parser import parse
from kobot.errors import CommandError

CATALOG_NAMES = (
    "the catalog has dashboard, f5, gpu, logging, monitoring, scope, "
    "storage-ceph-rbd, storage-cinder, storage-nfs"
)


@pytest.mark.parametrize(
    "text",
    [
        "install istio on prod",
        "install addon istio on prod",
        "安装 istio 到 prod",
        "show addon istio on prod",
        "upgrade addon istio on prod",
        "uninstall addon istio on prod",
    ],
)
def test_an_addon_the_catalog_does_not_hold_is_answered_with_the_catalog(text: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse(text)
    message = str(caught.value)
    assert "there is no addon 'istio'" in message and CATALOG_NAMES in message, message
    assert "cluster" not in message.lower()


def test_a_misspelt_addon_gets_did_you_mean() -> None:
    with pytest.raises(CommandError) as caught:
        parse("install monitring on prod")
    assert "did you mean monitoring?" in str(caught.value)
    assert caught.value.suggestions == ["addon=monitoring"]


@pytest.mark.parametrize(
    ("text", "addon"),
    [
        ("install monitoring on prod", "monitoring"),
        ("install grafana on prod", "monitoring"),
        ("安装监控 prod", "monitoring"),
        ("install addon 日志 on prod", "logging"),
        ("install storage nfs server=nfs1 path=/exports on prod", "storage-nfs"),
        ("install gpu on prod", "gpu"),
        ("install nvidia on prod", "gpu"),
        ("安装显卡插件 prod", "gpu"),
        ("install scope on prod", "scope"),
        ("安装拓扑 prod", "scope"),
        ("install f5 bigip=https://bigip1.example.com partition=k8s on prod", "f5"),
        ("install storage ceph-rbd pool=k8s on prod", "storage-ceph-rbd"),
        ("install storage cinder region=RegionOne on prod", "storage-cinder"),
        ("安装ceph存储 prod", "storage-ceph-rbd"),
    ],
)
def test_catalog_names_and_their_other_words_still_parse(text: str, addon: str) -> None:
    parsed = parse(text)
    assert (parsed.command, parsed.cluster, parsed.args["addon"]) == ("addon.install", "prod", addon)


def test_the_values_a_person_sets_reach_the_command_and_credentials_are_no_argument() -> None:
    parsed = parse("install f5 bigip=https://bigip1.example.com partition=k8s mode=cluster on prod")
    assert {k: v for k, v in parsed.args.items() if v and k != "addon"} == {
        "bigip": "https://bigip1.example.com",
        "partition": "k8s",
        "mode": "cluster",
    }
    with pytest.raises(CommandError):
        parse("install f5 bigip=https://bigip1.example.com partition=k8s password=hunter2 on prod")
