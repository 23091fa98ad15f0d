"""Chat text → ParsedCommand, or a CommandError that says what was wrong and what would work.

Order of work: refuse over-long text, normalize, tokenize, find the longest command phrase,
sort the remaining words into named arguments, the cluster and bare words, place bare words by
their shape, then let the command's pydantic model validate (its errors are rewritten for chat).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from commands.catalog import load_commands
from commands.grammar import (
    CLUSTER_NAMES,
    CLUSTER_PREPOSITIONS,
    HELP_FLAGS,
    HERE_WORDS,
    ArgInfo,
    Token,
    UnclosedQuoteError,
    alias_index,
    args_of,
    close_matches,
    normalize_text,
    split_scripts,
    tokenize,
)
from commands.parsed import ParsedCommand
from commands.registry import CommandSpec
from kobot import defaults, validation
from kobot.automation_values import ALLOW_LOCAL_HOSTS
from kobot.errors import CommandError
from kobot.risk import Risk

HELP_COMMAND = "help"


class ClusterMissingError(CommandError):
    """The command needs a cluster and neither the text nor the channel's binding names one."""


def parse(text: str, *, default_cluster: str | None = None, allow_local_hosts: bool = False) -> ParsedCommand:
    """Understand one chat line. `default_cluster` (the channel's binding) fills a missing cluster;
    `allow_local_hosts` is the test-only setting that lets host arguments name this machine."""
    if len(text) > defaults.TEXT_MAX_COMMAND_CHARS:
        raise CommandError(
            f"That message is {len(text)} characters long; a command is at most "
            f"{defaults.TEXT_MAX_COMMAND_CHARS}."
        )
    normalized = normalize_text(text)
    if len(normalized) > defaults.TEXT_MAX_COMMAND_CHARS:
        raise CommandError(f"A command is at most {defaults.TEXT_MAX_COMMAND_CHARS} characters.")
    try:
        tokens = tokenize(normalized)
    except UnclosedQuoteError as exc:
        raise CommandError(f"A quote ({exc}) is not closed; put quotes around the whole value.") from None
    if not tokens:
        raise CommandError("Say `help` to see what I can do · 发送「帮助」查看命令", suggestions=["help"])
    index = alias_index(load_commands())
    match = index.match(tokens)
    if match is None:
        said = " ".join(t.text for t in tokens[:3])
        raise CommandError(
            f"I don't know the command '{said}'. Say `help` for the list.", suggestions=index.suggest(tokens)
        )
    spec = match.spec
    if spec.id != HELP_COMMAND and any(t.text.lower() in HELP_FLAGS for t in match.rest if not t.quoted):
        return ParsedCommand(command=HELP_COMMAND, cluster=None, args={"topic": spec.id}, risk=Risk.READ)
    words = _Scan(spec=spec, alias=match.alias, tokens=match.rest).run()
    cluster = _cluster(spec, words, default_cluster=default_cluster)
    raw = dict(words.values)
    if spec.prepare is not None:
        raw = spec.prepare(match.alias, raw)
    try:
        model = spec.args_model.model_validate(raw, context={ALLOW_LOCAL_HOSTS: allow_local_hosts})
    except ValidationError as exc:
        raise _invalid(spec, exc) from None
    return ParsedCommand(
        command=spec.id, cluster=cluster, args=model.model_dump(mode="json"), risk=spec.risk_for(model)
    )


@dataclass
class _Words:
    values: dict[str, Any] = field(default_factory=dict)
    cluster: str | None = None


@dataclass
class _Scan:
    """Sorts the words after the command phrase into arguments, the cluster and bare words."""

    spec: CommandSpec[Any]
    alias: str
    tokens: list[Token]
    infos: tuple[ArgInfo, ...] = ()
    by_name: dict[str, ArgInfo] = field(default_factory=dict)
    words: _Words = field(default_factory=_Words)
    bare: list[str] = field(default_factory=list)

    def run(self) -> _Words:
        self.infos = args_of(self.spec.args_model)
        self.by_name = {name: info for info in self.infos for name in info.names}
        pending = list(self.tokens)
        while pending:
            token = pending.pop(0)
            self._word(token, pending)
        self._place_bare()
        return self.words

    def _word(self, token: Token, pending: list[Token]) -> None:
        text = token.text
        lowered = text.lower()
        if token.quoted:
            self.bare.append(text)
        elif lowered in HERE_WORDS:
            return
        elif lowered.startswith("--") and len(lowered) > 2:
            key, eq, value = text[2:].partition("=")
            info = self._lookup(key, value or (pending[0].text if pending else None))
            if eq:
                self._set(key, info, value, pending)
            elif info is not None and info.is_flag:
                self._set(key, info, "true", pending)
            elif pending and not pending[0].text.startswith("--"):
                self._set(key, info, pending.pop(0).text, pending)
            else:
                raise CommandError(f"--{key} needs a value, like --{key} {self._example_value(info)}")
        elif "=" in text and not text.startswith("="):
            key, _, value = text.partition("=")
            self._set(key, self._lookup(key, value), value, pending)
        elif ":" in text and self._known(text.partition(":")[0]):
            key, _, value = text.partition(":")
            self._set(key, self._lookup(key, value), value, pending)
        elif self._known(lowered) and not self._preposition_for_cluster(lowered, pending):
            info = self._lookup(lowered)
            if info is not None and info.is_flag:
                self._set(lowered, info, "true", pending)
            elif (
                pending
                and ("=" not in pending[0].text or lowered.startswith("-"))
                and not pending[0].text.startswith("--")
            ):
                # after a dash flag (`-l app=web`) the next word is its value even with an `=` in it
                self._set(lowered, info, pending.pop(0).text, pending)
            else:
                raise CommandError(f"{lowered} needs a value, like {lowered}={self._example_value(info)}")
        elif lowered in CLUSTER_PREPOSITIONS and pending:
            self._set_cluster(pending.pop(0).text)
        elif "=" not in text and (pieces := split_scripts(text)) is not None:
            pending[:0] = [Token(piece) for piece in pieces]
        else:
            self.bare.append(text)

    def _known(self, name: str) -> bool:
        key = name.lower().lstrip("-")
        return key in self.by_name or (key in CLUSTER_NAMES and self.spec.cluster != "none")

    def _preposition_for_cluster(self, lowered: str, pending: Sequence[Token]) -> bool:
        """`on`/`from`/`到` are also argument names of some commands; a cluster-like word after them wins
        only when the argument would not take it."""
        if lowered not in CLUSTER_PREPOSITIONS or not pending:
            return False
        following = pending[0].text
        info = self.by_name.get(lowered)
        return _looks_like_cluster(following) and (info is None or not info.accepts(following))

    def _lookup(self, key: str, value: str | None = None) -> ArgInfo | None:
        name = key.strip().lower()
        if name in CLUSTER_NAMES:
            return None
        info = self.by_name.get(name) or self.by_name.get(name.replace("_", "-"))
        if info is None:
            raise self._unknown_argument(key, value)
        return info

    def _set(self, key: str, info: ArgInfo | None, value: str, pending: list[Token]) -> None:
        if not value.strip() and pending and "=" not in pending[0].text:
            value = pending.pop(0).text
        if info is None:
            self._set_cluster(value)
            return
        if not value.strip():
            raise CommandError(f"{info.name} needs a value, like {info.name}={self._example_value(info)}")
        if info.is_list:
            while value.endswith(",") and pending and "=" not in pending[0].text:
                value += pending.pop(0).text
            previous = self.words.values.get(info.name, [])
            self.words.values[info.name] = [*previous, *info.normalize(value)]
            return
        normalized = info.normalize(value.rstrip(","))
        old = self.words.values.get(info.name)
        if old is not None and old != normalized:
            raise CommandError(f"{info.name} is given twice ({old} and {normalized}); say it once.")
        self.words.values[info.name] = normalized

    def _set_cluster(self, value: str) -> None:
        name = value.strip().rstrip(",")
        if self.words.cluster is not None and self.words.cluster != name:
            raise CommandError(
                f"Two clusters given ({self.words.cluster} and {name}); a command acts on one."
            )
        self.words.cluster = name

    def _place_bare(self) -> None:
        bare = [word.rstrip(",") for word in self.bare if word.rstrip(",")]
        slots = [i for i in self.infos if i.positional and i.name not in self.words.values]
        if self.words.cluster is None and self.spec.cluster != "none" and bare:
            first = bare[0]
            required = [s for s in slots if s.required]
            fits = [s for s in slots if s.accepts(first)]
            # the command's object comes first (`install app redis prod`): then the cluster is a later
            # word no argument takes, found below, never the object
            object_first = any(s.required and s.before_cluster for s in fits)
            if (
                _could_be_cluster(first)
                and not any(s.choices for s in fits)
                and not object_first
                and (len(bare) > len(required) or not fits)
            ):
                self.words.cluster = first
                bare = bare[1:]
        for word in bare:
            slot = next(
                (
                    s
                    for s in slots
                    if s.accepts(word) and (s.is_list or s.greedy or s.name not in self.words.values)
                ),
                None,
            )
            if slot is None:
                choosing = next((s for s in slots if s.choices and s.name not in self.words.values), None)
                if choosing is not None and self.words.cluster is not None:
                    # with the cluster named, a word no slot takes is a wrong value of the open choice
                    # (`backup prod every week`): the model's answer names the allowed values
                    self.words.values[choosing.name] = choosing.normalize(word)
                    continue
                if (
                    self.spec.cluster != "none"
                    and _could_be_cluster(word)
                    and not close_matches(word, list(self.by_name))
                ):
                    if self.words.cluster is None:
                        # `install monitoring prod`: a cluster-like word left after the arguments
                        self.words.cluster = word
                        continue
                    raise self._second_cluster(word)
                raise self._stray(word)
            if slot.greedy:
                previous = self.words.values.get(slot.name)
                self.words.values[slot.name] = f"{previous} {word}" if previous else word
            elif slot.is_list:
                self.words.values[slot.name] = [*self.words.values.get(slot.name, []), *slot.normalize(word)]
            else:
                self.words.values[slot.name] = slot.normalize(word)

    def _allowed(self) -> str:
        names = [i.name for i in self.infos]
        if self.spec.cluster != "none":
            names.append("cluster")
        return ", ".join(names) if names else "none"

    def _unknown_argument(self, key: str, value: str | None) -> CommandError:
        candidates = [*self.by_name, *CLUSTER_NAMES] if self.spec.cluster != "none" else list(self.by_name)
        close = close_matches(key, candidates)
        canonical = list(
            dict.fromkeys(self.by_name[c].name if c in self.by_name else "cluster" for c in close)
        )
        suffix = f"={value}" if value else ""
        return CommandError(
            f"`{self.alias}` has no argument '{key}'. Allowed: {self._allowed()}.",
            suggestions=[f"{name}{suffix}" for name in canonical],
        )

    def _second_cluster(self, word: str) -> CommandError:
        example = f" For example: {self.spec.examples[0]}" if self.spec.examples else ""
        return CommandError(
            f"Two clusters given ({self.words.cluster} and {word}); a command acts on one. "
            f"If '{word}' is meant as something else, `{self.alias}` takes: {self._allowed()}.{example}"
        )

    def _stray(self, word: str) -> CommandError:
        close = close_matches(word, list(self.by_name))
        canonical = list(dict.fromkeys(self.by_name[c].name for c in close))
        example = f" For example: {self.spec.examples[0]}" if self.spec.examples else ""
        return CommandError(
            f"I don't understand '{word}' in `{self.alias}`. Allowed arguments: {self._allowed()}.{example}",
            suggestions=canonical,
        )

    @staticmethod
    def _example_value(info: ArgInfo | None) -> str:
        if info is None:
            return "prod"
        if info.choices:
            return info.choices[0]
        return str(info.default) if info.default not in (None, [], "") else "…"


def _could_be_cluster(word: str) -> bool:
    """A bare word meant as a cluster name, valid or not (a bad one then gets the name rules explained)."""
    return word[:1].isascii() and word[:1].isalpha() and "=" not in word


def _looks_like_cluster(word: str) -> bool:
    try:
        validation.cluster_name(word)
    except validation.ArgValueError:
        return False
    return True


def _cluster(spec: CommandSpec[Any], words: _Words, *, default_cluster: str | None) -> str | None:
    name = words.cluster
    if spec.cluster == "none":
        if name is not None:
            raise CommandError(f"`{spec.aliases[0]}` does not act on a cluster; drop '{name}'.")
        return None
    if name is None and spec.cluster == "required":
        name = default_cluster
    if name is None:
        if spec.cluster == "optional":
            return None
        example = spec.examples[0] if spec.examples else f"{spec.aliases[0]} prod"
        raise ClusterMissingError(
            f"Which cluster? Name it, e.g. `{example}`, or bind this channel to one: `use NAME here`.",
            suggestions=[example],
        )
    try:
        return validation.cluster_name(name)
    except validation.ArgValueError as exc:
        raise CommandError(str(exc)) from None


def _invalid(spec: CommandSpec[Any], exc: ValidationError) -> CommandError:
    infos = {info.name: info for info in args_of(spec.args_model)}
    messages: list[str] = []
    suggestions: list[str] = []
    for error in exc.errors(include_url=False):
        message, suggested = _explain(error, infos)
        info = infos.get(str(error["loc"][0])) if error["loc"] else None
        if info is not None and info.greedy:
            suggested = [f"{spec.aliases[0]} {s.partition('=')[2]}" for s in suggested]
        if message not in messages:
            messages.append(message)
        suggestions.extend(s for s in suggested if s not in suggestions)
    return CommandError("; ".join(messages) + ".", suggestions=suggestions)


def _explain(error: ErrorDetails, infos: Mapping[str, ArgInfo]) -> tuple[str, list[str]]:
    """A pydantic error as one chat sentence naming the argument, the bad value and what is allowed."""
    loc = error["loc"]
    name = str(loc[0]) if loc else ""
    info = infos.get(name)
    given = error.get("input")
    kind = error["type"]
    ctx = error.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, validation.ArgValueError):
        return str(cause).rstrip("."), [f"{name}={s}" if name else s for s in cause.suggestions]
    if isinstance(cause, Exception):
        return str(cause).rstrip("."), []
    if info is None:
        return error["msg"], []
    if kind == "missing":
        return f"{name} is required ({info.kind or info.description})", []
    if kind in ("literal_error", "enum"):
        choices = " | ".join(info.choices)
        close = close_matches(str(given), list(info.choices))
        return f"{name} must be one of {choices}, got '{given}'", [f"{name}={c}" for c in close]
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{name} must be a whole number{_range(info)}, got '{given}'", []
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{name} must be{_range(info) or ' in range'}, got {given}", []
    if kind == "bool_parsing":
        return f"{name} is a flag: say --{name.replace('_', '-')} or {name}=yes/no, got '{given}'", []
    if kind == "too_short":
        return f"{name} needs at least one value ({info.kind or info.description})", []
    return f"{name}: {error['msg']}", []


def _range(info: ArgInfo) -> str:
    if info.minimum is not None and info.maximum is not None:
        return f" from {info.minimum} to {info.maximum}"
    return ""
