"""The command grammar: chat text → tokens → a command phrase and argument words.

Chat text is messy: mentions, full-width punctuation from Chinese input methods, Slack links,
smart quotes, `—` where a client "corrected" `--`. Everything here is pure string work on the
text; nothing is ever handed to a shell or evaluated.
"""

from __future__ import annotations

import bisect
import difflib
import re
import threading
import unicodedata
from collections import Counter
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
_CJK_RANGES = "\u2e80-\u9fff\uf900-\ufaff"
_CJK = re.compile(f"[{_CJK_RANGES}]")
_SCRIPT_RUNS = re.compile(f"[{_CJK_RANGES}]+|[^{_CJK_RANGES}]+")
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
    before_cluster: bool = False
    """The command's object, said before the cluster: in `install app redis prod` the first bare word is
    this argument and a later one the cluster (without it, a first bare word that could be either is the
    cluster: `remove node prod worker-3`)."""


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
    before_cluster: bool = False

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
    return _CJK.search(text) is not None


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
                before_cluster=arg.before_cluster,
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


@dataclass(frozen=True)
class _AliasEntry:
    """One alias, with what matching needs worked out once instead of per message."""

    order: int
    alias: str
    spec: CommandSpec[Any]
    words: tuple[str, ...]
    compact: str | None
    """The alias without spaces when it is matched compactly (中文, or around a `{cluster}` slot)."""
    around_cluster: bool


class AliasIndex:
    """Every alias of every command, longest first, so the longest phrase wins.

    A line is matched only against the aliases that can start with its first word (plain aliases by
    that word, 中文 and `{cluster}` aliases by its first character), in the same longest-first order:
    the index has hundreds of aliases and most lines are one of a few short commands."""

    def __init__(self, commands: Mapping[str, CommandSpec[Any]]) -> None:
        entries = [(alias.lower(), spec) for spec in commands.values() for alias in (*spec.aliases, spec.id)]
        ordered = sorted(entries, key=lambda e: len(e[0].replace(" ", "")), reverse=True)
        self.entries = [_entry(order, alias, spec) for order, (alias, spec) in enumerate(ordered)]
        self._by_word: dict[str, list[_AliasEntry]] = {}
        self._by_char: dict[str, list[_AliasEntry]] = {}
        self._anywhere: list[_AliasEntry] = []
        for entry in self.entries:
            if entry.compact is None:
                self._by_word.setdefault(entry.words[0], []).append(entry)
            elif entry.compact:
                self._by_char.setdefault(entry.compact[0], []).append(entry)
            else:
                self._anywhere.append(entry)
        self.phrases = sorted({alias for alias, _ in entries if CLUSTER_SLOT not in alias})
        self._letters = _LetterCodes(self.phrases)
        # per word count, the phrases by length: a head can only be close to phrases of similar length
        self._by_size: dict[int, tuple[list[int], list[tuple[int, str, int]]]] = {}
        for position, phrase in sorted(enumerate(self.phrases), key=lambda p: len(p[1])):
            lengths, shaped = self._by_size.setdefault(len(phrase.split()), ([], []))
            lengths.append(len(phrase))
            shaped.append((position, phrase, self._letters.code(phrase)))
        self._matchers = threading.local()
        self.size = len(commands)

    def _candidates(self, first: str) -> list[_AliasEntry]:
        if not first:
            return self.entries
        found = [
            *self._by_word.get(first, ()),
            *self._by_char.get(first[0], ()),
            *self._anywhere,
        ]
        return sorted(found, key=lambda e: e.order)

    def match(self, tokens: Sequence[Token]) -> AliasMatch | None:
        if not tokens:
            return None
        lowered = [t.text.lower() if not t.quoted else "\0" for t in tokens]
        for entry in self._candidates(lowered[0]):
            if entry.around_cluster:
                around = _match_around_cluster(entry.alias, tokens, lowered)
                if around is not None:
                    return AliasMatch(spec=entry.spec, alias=entry.alias, rest=around)
            elif entry.compact is not None:
                found = _match_compact(entry.compact, tokens, lowered)
                if found is not None:
                    return AliasMatch(spec=entry.spec, alias=entry.alias, rest=found)
            elif tuple(lowered[: len(entry.words)]) == entry.words:
                return AliasMatch(spec=entry.spec, alias=entry.alias, rest=list(tokens[len(entry.words) :]))
        return None

    def suggest(self, tokens: Sequence[Token]) -> list[str]:
        """Whole corrected lines for an unknown command: the closest alias in place of as many words."""
        words = [t.text.lower() for t in tokens]
        cutoff = defaults.SUGGESTION_CUTOFF
        matchers = self._phrase_matchers()
        bounded: list[tuple[float, int, str, int, str]] = []
        for size, (lengths, shaped) in self._by_size.items():
            head = " ".join(words[:size])
            # difflib's two upper bounds, from what is known before comparing: the lengths (a phrase
            # more than 2/cutoff times longer or shorter cannot reach the cutoff) and the letters shared
            # (the range is widened by one against float rounding; the exact test is the one below)
            low = bisect.bisect_left(lengths, len(head) * cutoff / (2 - cutoff) - 1)
            high = bisect.bisect_right(lengths, len(head) * (2 - cutoff) / cutoff + 1)
            head_letters = self._letters.code(head) if low < high else 0
            for position, phrase, letters in shaped[low:high]:
                total = len(head) + len(phrase)
                # as difflib computes them, so a phrase at the cutoff is kept exactly as there
                bound = 2.0 * (letters & head_letters).bit_count() / total
                if 2.0 * min(len(head), len(phrase)) / total < cutoff or bound < cutoff:
                    continue
                bounded.append((-bound, position, phrase, size, head))
        # best bound first: once SUGGESTIONS_MAX lines score above what the rest could reach, stop
        found: list[tuple[int, str, float]] = []
        best: dict[str, float] = {}
        for negative_bound, position, phrase, size, head in sorted(bounded):
            if len(best) >= SUGGESTIONS_MAX and -negative_bound < sorted(best.values())[-SUGGESTIONS_MAX]:
                break
            matcher = matchers[position]
            matcher.set_seq1(head)
            ratio = matcher.ratio()
            if ratio >= cutoff:
                line = " ".join([phrase, *(t.text for t in tokens[size:])])
                found.append((position, line, ratio))
                best[line] = max(ratio, best.get(line, 0.0))
        scored: dict[str, float] = {}
        for _, line, ratio in sorted(found):
            scored[line] = max(ratio, scored.get(line, 0.0))
        return [line for line, _ in sorted(scored.items(), key=lambda kv: -kv[1])][:SUGGESTIONS_MAX]

    def _phrase_matchers(self) -> list[difflib.SequenceMatcher[str]]:
        matchers: list[difflib.SequenceMatcher[str]] | None = getattr(self._matchers, "list", None)
        if matchers is None:
            matchers = [difflib.SequenceMatcher(None, "", phrase) for phrase in self.phrases]
            self._matchers.list = matchers
        return matchers


class _LetterCodes:
    """A text's letters as one integer, so the letters two texts share are `(a & b).bit_count()`.

    Each letter of the phrases owns a field of bits; a text holding a letter n times sets the field's
    n lowest bits. The AND of two fields keeps min(n, m) bits: summed over fields, the size of the
    multiset intersection, which is what difflib's `quick_ratio` computes letter by letter."""

    def __init__(self, phrases: Sequence[str]) -> None:
        counts = [Counter(phrase) for phrase in phrases]
        self._width = max((max(c.values()) for c in counts if c), default=1)
        letters = sorted({letter for c in counts for letter in c})
        self._shift = {letter: index * self._width for index, letter in enumerate(letters)}

    def code(self, text: str) -> int:
        code = 0
        for letter, count in Counter(text).items():
            shift = self._shift.get(letter)
            if shift is not None:  # a letter no phrase has cannot be shared
                code |= ((1 << min(count, self._width)) - 1) << shift
        return code


def _entry(order: int, alias: str, spec: CommandSpec[Any]) -> _AliasEntry:
    if CLUSTER_SLOT in alias:
        head = alias.partition(CLUSTER_SLOT)[0].replace(" ", "")
        return _AliasEntry(order, alias, spec, tuple(alias.split()), head, around_cluster=True)
    compact = alias.replace(" ", "") if has_cjk(alias) else None
    return _AliasEntry(order, alias, spec, tuple(alias.split()), compact, around_cluster=False)


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
    pieces = _SCRIPT_RUNS.findall(word)
    return pieces if len(pieces) > 1 else None


def close_matches(word: str, candidates: Sequence[str]) -> list[str]:
    return difflib.get_close_matches(word.lower(), list(candidates), n=3, cutoff=defaults.SUGGESTION_CUTOFF)
