"""What chat clients do to text: mentions, full-width input, smart quotes, Slack links, no spaces."""

from __future__ import annotations

import pytest

from commands.grammar import Token, normalize_text, tokenize
from commands.parser import parse


@pytest.mark.parametrize(
    "text",
    [
        "<@U0123ABC> scale workers 5 on prod",
        "<@U0123ABC|kobot> scale workers 5 on prod",
        "@kobot scale workers 5 on prod",
        "@kobot: scale workers 5 on prod",
        "@机器人 scale workers 5 on prod",
        "@kobot @机器人 scale workers 5 on prod",
        "  scale   workers\t5\n on  prod  ",
        "SCALE Workers 5 ON prod",
        "scale workers ５ on ｐｒｏｄ",
        "scale workers 5 on prod。",
        "scale workers 5 on prod!",
        "scale\u3000workers\u30005\u3000on\u3000prod",
        "scale workers 5 on prod\u200b",
        "scale workers count=5 cluster=prod",
        "scale workers count：5 集群：prod",
        "scale workers --count 5 --cluster prod",
        "scale workers --count=5 on prod",
        "scale workers count: 5 on prod",
        'scale workers count="5" on prod',
    ],
)
def test_the_same_command_in_many_forms(text: str) -> None:
    parsed = parse(text)
    assert (parsed.command, parsed.cluster, parsed.args["count"]) == ("workers.scale", "prod", 5)


@pytest.mark.parametrize(
    "text",
    [
        "@机器人 扩容 prod 工作节点 5",
        "扩容　prod　工作节点　５",
        "扩容 prod，工作节点＝5",
        "扩容 prod，工作节点：5",
        "扩容 prod；工作节点：5",
        "扩容prod工作节点5",
        "扩容 在 prod 工作节点 5",
        "扩容 在prod 工作节点5",
        "扩容 工作节点=5 集群=prod",
        "扩 容 prod 工作节点 5",
    ],
)
def test_chinese_forms(text: str) -> None:
    parsed = parse(text)
    assert (parsed.command, parsed.cluster, parsed.args["count"]) == ("workers.scale", "prod", 5)


def test_full_width_colons_separate_chinese_keys_from_values() -> None:
    """Chinese input methods type `：` where English users type `=`; IPv6 colons stay what they are."""
    parsed = parse("创建集群 prod，主节点：3，工作节点：5")
    assert (parsed.command, parsed.cluster, parsed.args["masters"], parsed.args["workers"]) == (
        "cluster.create",
        "prod",
        3,
        5,
    )
    parsed = parse("创建集群 prod，主节点：1，工作节点：1，主机：2001:db8::7、2001:db8::8")
    assert parsed.args["hosts"] == ["2001:db8::7", "2001:db8::8"]


def test_full_width_create_with_chinese_commas_and_ideographic_list() -> None:
    parsed = parse("@机器人 创建集群　prod，主节点＝１，工作节点＝２，主机＝10.0.0.1、10.0.0.2、10.0.0.3。")
    assert parsed.args["hosts"] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert (parsed.args["masters"], parsed.args["workers"]) == (1, 2)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('delete cluster prod --break-glass "db is on fire"', "db is on fire"),
        ("delete cluster prod --break-glass 'db is on fire'", "db is on fire"),
        ("delete cluster prod --break-glass “db is on fire”", "db is on fire"),
        ("delete cluster prod —break-glass “db is on fire”", "db is on fire"),
        ('delete cluster prod break_glass="db is  on fire"', "db is on fire"),
        ('删除集群 prod 紧急原因="数据库 故障"', "数据库 故障"),
        ('delete cluster prod --break-glass "it\'s down; a=b, c"', "it's down; a=b, c"),
        ("delete cluster prod --break-glass don't-wait", "don't-wait"),
    ],
)
def test_quoted_values_keep_their_spaces_and_punctuation(text: str, reason: str) -> None:
    assert parse(text).args["break_glass"] == reason


def test_a_quoted_word_is_never_a_command_phrase_or_keyword() -> None:
    parsed = parse('help "scale"')
    assert parsed.args["topic"] == "workers.scale"
    with pytest.raises(Exception, match="don't know the command"):
        parse('"scale workers" 5 on prod')


def test_slack_links_are_unwrapped() -> None:
    parsed = parse("add node prod host=<http://node9.example.com|node9.example.com>")
    assert parsed.args["host"] == "node9.example.com"


def test_normalize_keeps_inner_text_and_drops_only_leading_mentions() -> None:
    assert normalize_text("<@U1> notify prod job @oncall") == "notify prod job @oncall"


def test_tokenize_marks_fully_quoted_words() -> None:
    assert tokenize('a "b c" d="e f"') == [Token("a"), Token("b c", quoted=True), Token("d=e f")]


def test_tokenize_splits_arguments_joined_by_commas_but_not_list_values() -> None:
    assert [t.text for t in tokenize("prod,masters=3,workers=5,hosts=a,b")] == [
        "prod",
        "masters=3",
        "workers=5",
        "hosts=a,b",
    ]


def test_lone_surrogates_are_dropped_before_parsing() -> None:
    """Bolt's JSON decoding turns an escape like \\udfff into a lone surrogate; the command still parses."""
    assert normalize_text("list\udfff clusters\ud83d") == "list clusters"
    assert parse("list\udfff clusters").command == parse("list clusters").command
