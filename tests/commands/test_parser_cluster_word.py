"""Where the cluster is in a line without `on`: after the command's object, never the object itself.

`install monitoring prod` used to be refused ('prod' not understood) while `install app redis prod`
installed an app named prod on a cluster named redis. The object of the verb comes first; the cluster is
the word left over that no argument takes; one more such word is answered, naming what the command takes.
"""

from __future__ import annotations

import pytest

from commands.parser import parse
from kobot.errors import CommandError


@pytest.mark.parametrize(
    ("text", "addon"),
    [
        ("install monitoring prod", "monitoring"),
        ("install monitoring on prod", "monitoring"),
        ("install logging prod", "logging"),
        ("安装监控 prod", "monitoring"),
        ("install storage nfs server=nfs1 path=/exports prod", "storage-nfs"),
    ],
)
def test_addon_install_takes_the_cluster_with_or_without_on(text: str, addon: str) -> None:
    parsed = parse(text)
    assert (parsed.command, parsed.cluster, parsed.args["addon"]) == ("addon.install", "prod", addon)


@pytest.mark.parametrize(
    "text",
    [
        "install app redis prod",
        "install app redis on prod",
        "install app redis 1.2.3 prod",
        "install app redis 1.2.3 on prod",
        "install app redis prod 1.2.3",
    ],
)
def test_app_install_never_takes_the_app_for_the_cluster(text: str) -> None:
    parsed = parse(text)
    assert (parsed.command, parsed.cluster, parsed.args["app"]) == ("app.install", "prod", "redis")
    assert parsed.args["version"] == ("1.2.3" if "1.2.3" in text else None)


def test_a_bound_channel_still_lets_the_line_name_another_cluster() -> None:
    assert parse("install app redis staging", default_cluster="prod").cluster == "staging"
    assert parse("install app redis", default_cluster="prod").cluster == "prod"


@pytest.mark.parametrize(
    ("text", "takes"),
    [
        ("install monitoring prod extra", "`install` takes: server, path,"),
        ("install monitoring on prod extra", "`install` takes: server, path,"),
        ("install monitoring extra on prod", "`install` takes: server, path,"),
        ("install app redis prod extra", "`install app` takes: app, version, values, cluster."),
        ("install app redis bogus on prod", "`install app` takes: app, version, values, cluster."),
    ],
)
def test_an_extra_word_is_answered_with_what_the_command_takes(text: str, takes: str) -> None:
    with pytest.raises(CommandError) as refused:
        parse(text)
    message = refused.value.user_message
    assert "Two clusters given (prod and " in message
    assert takes in message
    assert "For example: install" in message


def test_a_command_without_an_object_still_takes_its_first_word_as_the_cluster() -> None:
    parsed = parse("upgrade prod to 1.30.14")
    assert parsed.cluster == "prod"
