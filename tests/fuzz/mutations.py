"""Seeded mutations of valid inbound bodies: broken bytes and encodings, and JSON of the wrong shape.

Each surface's fuzz test starts from bodies the platform really sends, mutates them with one seeded
`random.Random` (so a failure repeats with its seed), signs or encrypts the result as the platform
would, and asserts kobot answers every one below 500 and logs no unexpected exception.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

BOM = b"\xef\xbb\xbf"

NASTY_BYTES: tuple[bytes, ...] = (
    b"\xff",
    b"\xc3",
    b"\xed\xbf\xbf",  # a surrogate encoded as UTF-8: not valid UTF-8
    b"\x00",
    b"\xe2\x80\xae",  # right-to-left override
    b"%ff",
    b"%",
    b"&",
    b"=",
    b"\\",
    b'"',
    b"{",
    b"]",
    b"\\udfff",
    b"\\ud83d",
    b"\r\n",
)
"""Byte strings that break decoders, parsers and escapes when dropped into a body."""

NASTY_STRINGS: tuple[str, ...] = (
    "\udfff",
    "\ud83d",
    "a\udfffb",
    "\ufeff",
    "\x00",
    "\u202e",
    "",
    " ",
    "x" * 5000,
    "<@U0KOBOT>",
    "<@U0KOBOT> \udfff",
    "<@U0KOBOT> create cluster \ud800 masters=1",
    "%s%n",
    "../../etc/passwd",
    "１２３",
    "${jndi:ldap://x}",
    "\n" * 50,
)
"""String values that once crashed a parser, a key builder or a JSON encoder somewhere."""

NASTY_VALUES: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    2**64,
    1e308,
    [],
    {},
    [None],
    [1, "a"],
    {"id": None},
    {"id": ["x"]},
    [[[[[]]]]],
)
"""Values of the wrong type for any field."""


def mutate_bytes(rng: random.Random, body: bytes) -> bytes:
    """One byte-level mutation: flip, insert, delete, truncate, BOM, or re-encode."""
    choice = rng.randrange(8)
    if not body:
        return rng.choice(NASTY_BYTES)
    at = rng.randrange(len(body) + 1)
    if choice == 0:
        flipped = bytearray(body)
        index = min(at, len(body) - 1)
        flipped[index] ^= 1 << rng.randrange(8)
        return bytes(flipped)
    if choice == 1:
        return body[:at] + rng.choice(NASTY_BYTES) + body[at:]
    if choice == 2:
        end = min(len(body), at + rng.randrange(1, 16))
        return body[:at] + body[end:]
    if choice == 3:
        return body[:at]
    if choice == 4:
        return BOM + body
    if choice == 5:
        try:
            return body.decode("utf-8").encode(rng.choice(("utf-16", "latin-1", "gb18030")), "replace")
        except UnicodeDecodeError:
            return body[::-1]
    if choice == 6:
        return body + body[: rng.randrange(len(body) + 1)]
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _replace(value: Any, path: tuple[str | int, ...], new: Callable[[Any], Any]) -> Any:
    if not path:
        return new(value)
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {key: (_replace(item, rest, new) if key == head else item) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace(item, rest, new) if index == head else item for index, item in enumerate(value)]
    return value


_DELETE = object()


def _drop_deleted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _drop_deleted(item) for key, item in value.items() if item is not _DELETE}
    if isinstance(value, list):
        return [_drop_deleted(item) for item in value if item is not _DELETE]
    return value


def mutate_document(rng: random.Random, document: Any) -> Any:
    """One structural mutation of a JSON document: a value retyped, replaced, emptied or removed."""
    paths = list(_paths(document))
    path = rng.choice(paths)
    choice = rng.randrange(5)
    if choice == 0:
        return _drop_deleted(_replace(document, path, lambda _: _DELETE)) if path else {}
    if choice == 1:
        return _replace(document, path, lambda _: rng.choice(NASTY_VALUES))
    if choice == 2:
        return _replace(document, path, lambda _: rng.choice(NASTY_STRINGS))
    if choice == 3:
        return _replace(
            document,
            path,
            lambda old: (old + rng.choice(NASTY_STRINGS)) if isinstance(old, str) else [old, old],
        )
    return _replace(document, path, lambda old: {"nested": old} if rng.random() < 0.5 else [old])


def to_json(document: Any) -> bytes:
    """JSON as a careless sender writes it: lone surrogates pass through as \\uXXXX escapes."""
    return json.dumps(document).encode()


def mutated_json_bodies(rng: random.Random, documents: list[Any], count: int) -> Iterator[bytes]:
    """`count` bodies: most are valid JSON of a wrong shape, the rest broken bytes."""
    for _ in range(count):
        document = rng.choice(documents)
        for _ in range(rng.randrange(1, 4)):
            document = mutate_document(rng, document)
        body = to_json(document)
        if rng.random() < 0.3:
            body = mutate_bytes(rng, body)
        yield body
