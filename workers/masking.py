"""Masking of secrets in anything that leaves a runner: events, results, logs and artifact files.

Two sources of secrets: the exact values a caller hands over (passwords, tokens it passed to
Ansible through the environment) and well-known shapes that may show up in output without the
caller knowing (a kubeconfig's key data, a kubeadm bootstrap token, a PEM private key, a bearer
header, a `password=...` pair). Exact values are replaced first, longest first, so a secret that
contains another one is never half masked.

A known value is also masked in the encodings a task is likely to print it in: base64 (standard and
URL-safe, padded or not, and inside a longer base64 text such as `user:secret` in a Basic header, at
each of the three byte alignments, also wrapped into lines as `base64 -w76` or PEM print it),
percent-encoding (`%26` or `%2f`, `+` for spaces) and hex.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "********"
"""What a secret is replaced with; fixed width so the length of a secret is not revealed."""

MIN_ENV_SECRET_LENGTH = 6
"""Environment values shorter than this are not treated as secrets (flags like `1` or `true`)."""

MIN_ENCODED_SECRET_LENGTH = 6
"""Values shorter than this (in bytes) are masked as written only: the encodings of a few bytes are a few
characters that ordinary output contains by chance."""

_SECRET_ENV_NAME = re.compile(
    r"(PASS|SECRET|TOKEN|PRIVATE|CREDENTIAL|API_?KEY|ACCESS_?KEY|AUTH)", re.IGNORECASE
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # PEM private keys, whole block (kubeadm and SSH keys alike).
    (
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
            re.DOTALL,
        ),
        MASK,
    ),
    # kubeconfig embedded credentials and key material.
    (
        re.compile(r"((?:client-key-data|client-certificate-data|token|id-token|refresh-token)\s*:\s*)\S+"),
        r"\1" + MASK,
    ),
    # kubeadm bootstrap tokens: [a-z0-9]{6}.[a-z0-9]{16}
    (re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b"), MASK),
    # kubeadm certificate keys (64 hex characters after --certificate-key or certificateKey).
    (re.compile(r"((?:--certificate-key[ =]|certificateKey\s*:\s*)['\"]?)[0-9a-f]{64}"), r"\1" + MASK),
    # HTTP authorization headers.
    (re.compile(r"((?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1" + MASK),
    # Slack-style tokens.
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), MASK),
    # key=value / key: value pairs whose key names a secret.
    (
        re.compile(
            r"((?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)"
            r"[\"']?\s*[:=]\s*[\"']?)([^\s\"',}]+)",
            re.IGNORECASE,
        ),
        r"\1" + MASK,
    ),
)


def encodings_of(value: str) -> set[str]:
    """The forms `value` takes when a task base64-, percent- or hex-encodes it (empty for short values).

    Base64 packs 3 bytes into 4 characters, so inside a longer encoded text the secret's characters
    depend on its byte offset modulo 3: for each offset, the characters fully determined by the secret's
    own bytes are kept (the one or two shared with neighbouring bytes are left out)."""
    raw = value.encode()
    if len(raw) < MIN_ENCODED_SECRET_LENGTH:
        return set()
    forms: set[str] = set()
    for offset in range(3):
        text = base64.b64encode(bytes(offset) + raw).decode()
        start = (offset * 4 + 2) // 3
        end = ((offset + len(raw)) * 4) // 3
        forms.add(text[start:end])
    whole = base64.b64encode(raw).decode()
    forms |= {whole, whole.rstrip("=")}
    forms |= {form.translate(_URLSAFE) for form in forms}
    percent = {quote(value, safe=""), quote(value), quote_plus(value)}
    forms |= percent | {_PERCENT_ESCAPE.sub(lambda m: m.group(0).lower(), form) for form in percent}
    hexed = binascii.hexlify(raw).decode()
    forms |= {hexed, hexed.upper()}
    forms.discard("")
    return forms


_URLSAFE = str.maketrans("+/", "-_")

_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")

_WRAPPED = re.compile(r"[A-Za-z0-9+/_-]+(?:[ \t]*(?:\r?\n|\\r\\n|\\n)[ \t]*[A-Za-z0-9+/_-]+)+=*")
"""Base64-alphabet runs across line breaks (real ones, or `\\n` as in JSON): a wrapped encoding."""

_BREAK = re.compile(r"([ \t]*(?:\r?\n|\\r\\n|\\n)[ \t]*)")


class Masker:
    """Replaces known secret values and secret-looking text with `MASK`.

    Built per run from the values the caller passed; `mask` is cheap enough to call on every event.
    """

    def __init__(self, *, values: Iterable[str] = ()) -> None:
        unique = {value for value in values if value}
        self._values: tuple[str, ...] = tuple(sorted(unique, key=len, reverse=True))
        encoded: set[str] = set()
        for value in self._values:
            # The same secret as it appears inside JSON (artifact files, event payloads).
            escaped = json.dumps(value)[1:-1]
            if escaped != value:
                encoded.add(escaped)
            encoded |= encodings_of(value)
        encoded -= set(self._values)
        self._encoded: tuple[str, ...] = tuple(sorted(encoded, key=len, reverse=True))

    @classmethod
    def with_environment(cls, *, values: Iterable[str], environ: dict[str, str]) -> Masker:
        """A masker that also hides environment values whose names look secret (they reach artifacts)."""
        extra = [
            value
            for name, value in environ.items()
            if _SECRET_ENV_NAME.search(name) and len(value) >= MIN_ENV_SECRET_LENGTH
        ]
        return cls(values=[*values, *extra])

    @property
    def values(self) -> tuple[str, ...]:
        return self._values

    def mask(self, text: str) -> str:
        """`text` with every secret replaced; patterns run after exact values."""
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        for value in self._encoded:
            if value in text:
                text = text.replace(value, MASK)
        if self._encoded:
            text = _WRAPPED.sub(self._mask_wrapped, text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def _mask_wrapped(self, match: re.Match[str]) -> str:
        """The lines of a wrapped block over which an encoded secret runs, each masked whole."""
        parts = _BREAK.split(match.group(0))
        lines = parts[::2]
        joined = "".join(lines)
        ends = list(itertools.accumulate(len(line) for line in lines))
        hit: set[int] = set()
        for value in self._encoded:
            start = joined.find(value)
            while start != -1:
                end = start + len(value)
                hit |= {i for i, stop in enumerate(ends) if stop - len(lines[i]) < end and stop > start}
                start = joined.find(value, start + 1)
        if not hit:
            return match.group(0)
        for i in hit:
            parts[2 * i] = MASK
        return "".join(parts)

    def mask_optional(self, text: str | None) -> str | None:
        return None if text is None else self.mask(text)

    def mask_data(self, data: Any) -> Any:
        """A JSON-like structure with every string in it masked (keys kept)."""
        if isinstance(data, str):
            return self.mask(data)
        if isinstance(data, dict):
            return {key: self.mask_data(value) for key, value in data.items()}
        if isinstance(data, list | tuple):
            return [self.mask_data(item) for item in data]
        return data

    def scrub_file(self, *, path: Path) -> bool:
        """Rewrite a text file with its secrets masked; True when something changed.

        Files that are not UTF-8 text are removed: kobot cannot prove they hold no secret.
        """
        try:
            raw = path.read_bytes()
        except OSError:
            return False
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            path.unlink(missing_ok=True)
            return True
        masked = self.mask(text)
        if masked == text:
            return False
        path.write_text(masked, encoding="utf-8")
        return True
