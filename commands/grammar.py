"""The command grammar: chat text → tokens → a command phrase and argument words.

Chat text is messy: mentions, full-width punctuation from Chinese input methods, Slack links,
smart quotes, `—` where a client "corrected" `--`. Everything here is pure string work on the
text; nothing is ever handed to a shell or evaluated.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Le
from pydantic import BaseModel

from commands.registry import CommandSpec
from kobot import defaults
from kobot.validation import SURROGATE_CATEGORY

CLUSTER_NAMES = ("cluster", "集群")
"""Argument names that always mean the cluster (`cluster=prod`, `集群 prod`)."""

HERE_WORDS = frozenset({"here", "这里", "此处", "本群", "这个群"})
"""`notify prod job here`: the conversation a command comes from is always its target, so these are filler."""

CLUSTER_PREPOSITIONS = ("on", "in", "from", "for", "at", "to", "在", "于", "对", "到")
"""Words that introduce the cluster in natural orders: `scale workers 5 on prod`, `在 prod`."""

CLUSTER_SLOT = "{cluster}"
"""In an alias, the word naming the cluster: 中文 puts it between verb and object (`查看 {cluster} 节点`)."""

HELP_FLAGS = ("--help", "-h")
"""`create cluster --help` answers with that command's help instead of running it."""

SUGGESTIONS_MAX = 3
"""At most this many 'did you mean' lines: more is noise."""

MENTION_STRIP_MAX = 5
"""Leading mentions removed at most (`@kobot @机器人 ...`); more is not a command."""

_MENTION = re.compile(r"^\s*(?:<@[^<>\s]+>|@\S+)[\s,:]*")
_SLACK_LINK = re.compile(r"<[^<>|\s]+\|([^<>]+)>")
_DASHES = re.compile(r"(?<!\S)[—–―]+(?=\w)")
_TRAILING = ".。!?…"
_PUNCT = str.maketrans(
    {"、": ",", "“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "「": '"', "」": '"', "『": '"', "』": '"'}
)
_CJK_KEY_COLON = r"[\u2e80-\u9fff\uf900-\ufaff]+:"
"""A 中文 key and its colon (`主节点：3`, the full-width colon already NFKC'd): Chinese input methods type
`：` where English users type `=`. Only CJK keys: in `hosts=fe80::1,fe80::2` a colon is no separator."""
_KEY_COMMA = re.compile(rf",(?=[^,=\s]+=|{_CJK_KEY_COLON})")
_HAS_CJK_KEY = re.compile(_CJK_KEY_COLON)
_QUOTES = "\"'"


@dataclass(frozen=True)
class Arg:
    """Grammar of one argument, attached with `Annotated[..., Arg(...)]`; the outermost Arg wins."""

    names: tuple[str, ...] = ()
    """More names than the field's own (English variants and 中文), e.g. ("worker", "工作节点")."""
    positional: bool = False
    """A bare word may fill this argument when it fits `shape` (or the allowed values)."""
    shape: str | None = None
    """Regex a bare word must fully match to be taken positionally; None means any word."""
    greedy: bool = False
    """Takes every remaining bare word, joined by spaces (`help create cluster`)."""
    synonyms: Mapping[str, str] = field(default_factory=dict)
    """Other words for allowed values, mostly 中文: {"主节点": "master"}."""
    kind: str = ""
    """How help describes the value when the type alone does not say (`1.N.P`, `IP or hostname`)."""


@dataclass(frozen=True)
class ArgInfo:
    """Everything the parser and help need about one argument, read once from the model."""

    name: str
    names: tuple[str, ...]
    positional: bool
    shape: re.Pattern[str] | None
    greedy: bool
    synonyms: Mapping[str, str]
    choices: tuple[str, ...]
    is_list: bool
    is_flag: bool
    required: bool
    default: Any
    description: str
    kind: str
    minimum: int | None
    maximum: int | None

    def normalize(self, raw: str) -> str | list[str]:
        """Map synonyms and split lists; type conversion is left to the model."""
        if self.is_list:
            items: list[str] = []
            for part in raw.split(","):
                word = self.synonyms.get(part.strip().lower(), part.strip())
                items.extend(w.strip() for w in word.split(",") if w.strip())
            return [item.lower() if self.choices else item for item in items]
        value = raw.strip()
        if self.choices:
            value = self.synonyms.get(value.lower(), value).lower()
        return value

    def accepts(self, word: str) -> bool:
        """Whether a bare word fits this argument (used to place positional words)."""
        if self.choices:
            value = self.normalize(word)
            values = value if isinstance(value, list) else [value]
            return bool(values) and all(v in self.choices for v in values)
        return self.shape is None or self.shape.fullmatch(word) is not None


@dataclass(frozen=True)
class Token:
    text: str
    quoted: bool = False


def has_cjk(text: str) -> bool:
    return any("\u2e80" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" for ch in text)


DROPPED_CATEGORIES = ("Cc", "Cf", SURROGATE_CATEGORY)
"""Invisible control and format characters, and lone surrogates (UTF-8 cannot encode them)."""


def normalize_text(text: str) -> str:
    """NFKC (full-width → ASCII), drop mentions, Slack link markup, invisible characters, lone
    surrogates and end punctuation."""
    cleaned = unicodedata.normalize("NFKC", text).translate(_PUNCT)
    cleaned = "".join(
        " " if ch.isspace() else ch
        for ch in cleaned
        if unicodedata.category(ch) not in DROPPED_CATEGORIES or ch.isspace()
    )
    for _ in range(MENTION_STRIP_MAX):
        stripped = _MENTION.sub("", cleaned, count=1)
        if stripped == cleaned:
            break
        cleaned = stripped
    cleaned = _SLACK_LINK.sub(r"\1", cleaned)
    cleaned = _DASHES.sub("--", cleaned)
    return cleaned.strip().rstrip(_TRAILING).strip()


class UnclosedQuoteError(ValueError):
    pass


def tokenize(text: str) -> list[Token]:
    """Split on spaces and `;`, honouring "double" and 'single' quotes; no escapes, no expansion."""
    tokens: list[Token] = []
    buf: list[str] = []
    quote: str | None = None
    quoted = any_quote = started = False

    def flush() -> None:
        word = "".join(buf)
        if any_quote or ("=" not in word and not _HAS_CJK_KEY.search(word)):
            tokens.append(Token(word, quoted))
        else:
            tokens.extend(Token(part) for part in _KEY_COMMA.split(word) if part)

    for ch in text:
        if quote is not None:
            if ch == quote:
                quote = None
            else:
                buf.append(ch)
        elif ch in _QUOTES and not (ch == "'" and buf and buf[-1].isalnum()):
            quote, any_quote, quoted = ch, True, quoted or not started
            started = True
        elif ch.isspace() or ch == ";":
            if started:
                flush()
            buf, quoted, any_quote, started = [], False, False, False
        else:
            buf.append(ch)
            started = True
    if quote is not None:
        raise UnclosedQuoteError(quote)
    if started:
        flush()
    return tokens


def args_of(model: type[BaseModel]) -> tuple[ArgInfo, ...]:
    """The grammar of a command's arguments, in field order."""
    # a plain function in front of the cache: specs of the registry hold `type[Any]`, which mypy
    # does not take for the cache's Hashable argument, while it does take it for `type[BaseModel]`
    return _args_of(model)


@cache
def _args_of(model: type[BaseModel]) -> tuple[ArgInfo, ...]:
    infos: list[ArgInfo] = []
    for name, info in model.model_fields.items():
        arg = next((m for m in reversed(info.metadata) if isinstance(m, Arg)), Arg())
        annotation, is_list = _unwrap(info.annotation)
        choices = tuple(str(c) for c in get_args(annotation)) if get_origin(annotation) is Literal else ()
        minimum = next((int(str(m.ge)) for m in info.metadata if isinstance(m, Ge)), None)
        maximum = next((int(str(m.le)) for m in info.metadata if isinstance(m, Le)), None)
        spellings = (name, name.replace("_", "-"), *arg.names)
        infos.append(
            ArgInfo(
                name=name,
                names=tuple(dict.fromkeys(s.lower() for s in spellings)),
                positional=arg.positional,
                shape=re.compile(arg.shape) if arg.shape else None,
                greedy=arg.greedy,
                synonyms={k.lower(): v for k, v in arg.synonyms.items()},
                choices=choices,
                is_list=is_list,
                is_flag=annotation is bool,
                required=info.is_required(),
                default=None if info.is_required() else info.get_default(call_default_factory=True),
                description=info.description or "",
                kind=arg.kind,
                minimum=minimum,
                maximum=maximum,
            )
        )
    return tuple(infos)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """Strip Optional and list[...] so the element type is visible."""
    if get_origin(annotation) in (Union, UnionType):
        members = [a for a in get_args(annotation) if a is not NoneType]
        if len(members) == 1:
            annotation = members[0]
    if get_origin(annotation) in (list, tuple):
        return get_args(annotation)[0], True
    return annotation, False


@dataclass(frozen=True)
class AliasMatch:
    spec: CommandSpec[Any]
    alias: str
    rest: list[Token]


class AliasIndex:
    """Every alias of every command, longest first, so the longest phrase wins."""

    def __init__(self, commands: Mapping[str, CommandSpec[Any]]) -> None:
        entries = [(alias.lower(), spec) for spec in commands.values() for alias in (*spec.aliases, spec.id)]
        self.entries = sorted(entries, key=lambda e: len(e[0].replace(" ", "")), reverse=True)
        self.phrases = sorted({alias for alias, _ in entries if CLUSTER_SLOT not in alias})
        self.size = len(commands)

    def match(self, tokens: Sequence[Token]) -> AliasMatch | None:
        lowered = [t.text.lower() if not t.quoted else "\0" for t in tokens]
        for alias, spec in self.entries:
            if CLUSTER_SLOT in alias:
                around = _match_around_cluster(alias, tokens, lowered)
                if around is not None:
                    return AliasMatch(spec=spec, alias=alias, rest=around)
            elif has_cjk(alias):
                found = _match_compact(alias.replace(" ", ""), tokens, lowered)
                if found is not None:
                    return AliasMatch(spec=spec, alias=alias, rest=found)
            else:
                words = alias.split()
                if lowered[: len(words)] == words:
                    return AliasMatch(spec=spec, alias=alias, rest=list(tokens[len(words) :]))
        return None

    def suggest(self, tokens: Sequence[Token]) -> list[str]:
        """Whole corrected lines for an unknown command: the closest alias in place of as many words."""
        words = [t.text.lower() for t in tokens]
        scored: dict[str, float] = {}
        for phrase in self.phrases:
            size = len(phrase.split())
            head = " ".join(words[:size])
            matcher = difflib.SequenceMatcher(None, head, phrase)
            if matcher.real_quick_ratio() < defaults.SUGGESTION_CUTOFF:
                continue
            ratio = matcher.ratio()
            if ratio >= defaults.SUGGESTION_CUTOFF:
                line = " ".join([phrase, *(t.text for t in tokens[size:])])
                scored[line] = max(ratio, scored.get(line, 0.0))
        return [line for line, _ in sorted(scored.items(), key=lambda kv: -kv[1])][:SUGGESTIONS_MAX]


_INDEX: list[AliasIndex] = []


def alias_index(commands: Mapping[str, CommandSpec[Any]]) -> AliasIndex:
    """Built once; rebuilt when a plugin registered more commands."""
    if not _INDEX or _INDEX[0].size != len(commands):
        _INDEX[:] = [AliasIndex(commands)]
    return _INDEX[0]


def _match_compact(key: str, tokens: Sequence[Token], lowered: Sequence[str]) -> list[Token] | None:
    """Match a Chinese alias whether typed with or without spaces, or glued to the next word (`备份prod`)."""
    acc = ""
    for index, word in enumerate(lowered):
        acc += word
        if acc == key:
            return list(tokens[index + 1 :])
        if acc.startswith(key):
            remainder = tokens[index].text[len(tokens[index].text) - (len(acc) - len(key)) :]
            if remainder[0] in "=:":
                return None
            return [Token(remainder), *tokens[index + 1 :]]
        if not key.startswith(acc):
            return None
    return None


def _match_around_cluster(alias: str, tokens: Sequence[Token], lowered: Sequence[str]) -> list[Token] | None:
    """`查看 prod 节点` against `查看 {cluster} 节点`: the cluster word comes back as `cluster=prod`."""
    head, _, tail = (part.replace(" ", "") for part in alias.partition(CLUSTER_SLOT))
    after = _match_compact(head, tokens, lowered) if head else list(tokens)
    if not after or after[0].quoted:
        return None
    pieces = split_scripts(after[0].text) or [after[0].text]
    name, rest = pieces[0], [*(Token(piece) for piece in pieces[1:]), *after[1:]]
    if has_cjk(name) or "=" in name:
        return None
    remaining = (
        _match_compact(tail, rest, [t.text.lower() if not t.quoted else "\0" for t in rest]) if tail else rest
    )
    if remaining is None:
        return None
    return [Token(f"cluster={name}"), *remaining]


def split_scripts(word: str) -> list[str] | None:
    """`扩容prod工作节点5` → `扩容`, `prod`, `工作节点`, `5`: Chinese is often typed without spaces."""
    pieces: list[str] = []
    for ch in word:
        if pieces and has_cjk(ch) == has_cjk(pieces[-1][-1]):
            pieces[-1] += ch
        else:
            pieces.append(ch)
    return pieces if len(pieces) > 1 else None


def close_matches(word: str, candidates: Sequence[str]) -> list[str]:
    return difflib.get_close_matches(word.lower(), list(candidates), n=3, cutoff=defaults.SUGGESTION_CUTOFF)
