"""Help generated from the registry, so it never drifts from what the parser accepts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from commands.catalog import load_commands
from commands.grammar import ArgInfo, alias_index, args_of, close_matches, has_cjk, normalize_text, tokenize
from commands.registry import CommandSpec
from kobot.errors import CommandError
from kobot.messages import Field, MessageKind, OutgoingMessage
from kobot.risk import Risk
from kobot.validation import ArgValueError

AREAS: Mapping[str, str] = {
    "clusters": "Clusters · 集群",
    "nodes": "Nodes · 节点",
    "etcd": "etcd backups · 备份",
    "jobs": "Jobs · 任务",
    "alerts": "Alerts and notices · 告警与通知",
    "general": "General · 通用",
    "more": "More · 其他",
}
"""Overview sections, in the order shown."""

AREA_OF: Mapping[str, str] = {
    "cluster": "clusters",
    "workers": "nodes",
    "node": "nodes",
    "etcd": "etcd",
    "job": "jobs",
    "alerts": "alerts",
    "notify": "alerts",
    "help": "general",
    "whoami": "general",
    "audit": "general",
}
"""Command id prefix → section; a plugin's unknown prefix lands in `more`."""

AREA_WORDS: Mapping[str, str] = {
    **{area: area for area in AREAS},
    "cluster": "clusters",
    "node": "nodes",
    "jobs": "jobs",
    "alert": "alerts",
    "集群": "clusters",
    "节点": "nodes",
    "告警": "alerts",
    "通用": "general",
}
"""Words `help <word>` understands as a whole section."""

RISK_TEXT: Mapping[Risk, str] = {
    Risk.READ: "read: answers at once",
    Risk.CHANGE: "change: queues a job",
    Risk.RISKY: "risky: needs approval",
}

RISK_MARK: Mapping[Risk, str] = {Risk.READ: "", Risk.CHANGE: "", Risk.RISKY: " ⚠"}
"""Overview marker; a command whose risk depends on its arguments gets `(⚠ some forms)`."""


def area_of(spec: CommandSpec[Any]) -> str:
    return AREA_OF.get(spec.id.split(".", 1)[0], "more")


def resolve_topic(text: str) -> str:
    """A command id or a section for `help <text>`; an unknown topic gets 'did you mean'."""
    commands = load_commands()
    topic = " ".join(normalize_text(text).lower().split())
    if topic in commands:
        return topic
    if topic in AREA_WORDS:
        return AREA_WORDS[topic]
    match = alias_index(commands).match(tokenize(topic))
    if match is not None:
        return match.spec.id
    starting = {
        spec.id
        for spec in commands.values()
        for alias in spec.aliases
        if alias.split()[0] == topic or (has_cjk(topic) and alias.startswith(topic))
    }
    if len(starting) == 1:
        return starting.pop()
    if starting and len({area_of(commands[i]) for i in starting}) == 1:
        return area_of(commands[next(iter(starting))])
    phrases = sorted({a for spec in commands.values() for a in spec.aliases} | set(AREA_WORDS))
    raise ArgValueError(
        f"there is no help topic '{text}'; say `help` for the list", suggestions=close_matches(topic, phrases)
    )


def render_help(
    topic: str | None, *, allowed: Callable[[CommandSpec[Any]], bool] | None = None
) -> OutgoingMessage:
    """The overview (only commands `allowed` passes), one section, or one command in detail."""
    commands = load_commands()
    permitted = allowed or (lambda _spec: True)
    if topic is None:
        return _overview(commands, permitted)
    try:
        key = resolve_topic(topic)
    except ArgValueError as exc:
        raise CommandError(str(exc), suggestions=[f"help {s}" for s in exc.suggestions]) from None
    if key in commands:
        return _command_help(commands[key], permitted=permitted(commands[key]))
    return _overview(commands, permitted, only=key)


def _overview(
    commands: Mapping[str, CommandSpec[Any]],
    permitted: Callable[[CommandSpec[Any]], bool],
    *,
    only: str | None = None,
) -> OutgoingMessage:
    sections: list[str] = []
    for area, heading in AREAS.items():
        if only is not None and area != only:
            continue
        lines = [
            _summary_line(spec) for spec in commands.values() if area_of(spec) == area and permitted(spec)
        ]
        if lines:
            sections.append("\n".join([heading, *lines]))
    body = "\n\n".join(sections) or "You may not run any command here. Ask an admin for a role."
    return OutgoingMessage(
        kind=MessageKind.HELP,
        title="kobot commands" if only is None else f"kobot commands: {AREAS[only]}",
        body=body,
        footer="⚠ = needs approval. More: `help <command>`, e.g. `help create` · 详细说明：`帮助 创建集群`",
    )


def _summary_line(spec: CommandSpec[Any]) -> str:
    english, chinese = _split_aliases(spec)
    names = english[0] if english else spec.id
    if chinese:
        names += f" · {chinese[0]}"
    mark = RISK_MARK[spec.risk]
    if mark and spec.risk_rule is not None:
        mark = " (⚠ some forms)"
    return f"• {names}: {spec.summary}{mark}"


def _command_help(spec: CommandSpec[Any], *, permitted: bool) -> OutgoingMessage:
    english, chinese = _split_aliases(spec)
    risk = RISK_TEXT[spec.risk]
    if spec.risk_rule is not None:
        risk = f"up to {risk} (depends on the arguments, see below)"
    fields = [Field(label="Command", value=spec.id), Field(label="Risk", value=risk)]
    if spec.cluster != "none":
        where = "required (or the channel's cluster)" if spec.cluster == "required" else "optional"
        fields.append(Field(label="Cluster", value=f"{where}: `on prod`, `在 prod` or the first word"))
    fields.append(Field(label="Aliases", value=", ".join(english)))
    if chinese:
        fields.append(Field(label="别名", value="，".join(chinese)))
    infos = args_of(spec.args_model)
    body_parts = [" ".join((spec.args_model.__doc__ or "").split())]
    if infos:
        body_parts.append("Arguments (name=value, --name value, or 中文名=值):")
        body_parts.extend(_arg_line(info) for info in infos)
    return OutgoingMessage(
        kind=MessageKind.HELP,
        title=f"{english[0] if english else spec.id}{' · ' + chinese[0] if chinese else ''}",
        status=spec.summary if permitted else f"{spec.summary}\nYou may not run this command here.",
        body="\n".join(part for part in body_parts if part),
        fields=tuple(fields),
        code="\n".join(spec.examples) or None,
        footer="Examples above; every command also takes --help.",
    )


def _arg_line(info: ArgInfo) -> str:
    chinese = [n for n in info.names if has_cjk(n)]
    name = info.name + (f" ({'/'.join(chinese)})" if chinese else "")
    if info.choices:
        value = " | ".join(info.choices)
    elif info.kind:
        value = info.kind
    elif info.minimum is not None and info.maximum is not None:
        value = f"number {info.minimum}–{info.maximum}"
    elif info.is_flag:
        value = f"flag: --{info.name.replace('_', '-')}"
    else:
        value = "text"
    if info.is_list and info.choices:
        value = f"list of {value}, comma separated"
    if info.required:
        value += ", required"
    elif info.default not in (None, [], False):
        value += f", default {info.default}"
    described = f": {info.description}" if info.description else ""
    return f"• {name}: {value}{described}"


def _split_aliases(spec: CommandSpec[Any]) -> tuple[list[str], list[str]]:
    english = [a for a in spec.aliases if not has_cjk(a)]
    chinese = [a for a in spec.aliases if has_cjk(a)]
    return english, chinese
