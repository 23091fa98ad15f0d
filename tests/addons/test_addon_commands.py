"""The addon commands' grammar: an addon word the catalog does not hold is answered with the names it
does hold (and the nearest one), never taken for a second cluster."""

from __future__ import annotations

import pytest

from commands.parser import parse
from kobot.errors import CommandError

CATALOG_NAMES = "the catalog has dashboard, logging, monitoring, storage-nfs"


@pytest.mark.parametrize(
    "text",
    [
        "install gpu on prod",
        "install addon gpu on prod",
        "安装 gpu 到 prod",
        "show addon gpu on prod",
        "upgrade addon gpu on prod",
        "uninstall addon gpu on prod",
    ],
)
def test_an_addon_the_catalog_does_not_hold_is_answered_with_the_catalog(text: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse(text)
    message = str(caught.value)
    assert "there is no addon 'gpu'" in message and CATALOG_NAMES in message, message
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
    ],
)
def test_catalog_names_and_their_other_words_still_parse(text: str, addon: str) -> None:
    parsed = parse(text)
    assert (parsed.command, parsed.cluster, parsed.args["addon"]) == ("addon.install", "prod", addon)
