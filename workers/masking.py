"""Masking of secrets in anything that leaves a runner: events, results, logs and artifact files.

Two sources of secrets: the exact values a caller hands over (passwords, tokens it passed to
Ansible through the environment) and well-known shapes that may show up in output without the
caller knowing (a kubeconfig's key data, a kubeadm bootstrap token, a PEM private key, a bearer
header, a `password=...` pair). Exact values are replaced first, longest first, so a secret that
contains another one is never half masked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MASK = "********"
"""What a secret is replaced with; fixed width so the length of a secret is not revealed."""

MIN_ENV_SECRET_LENGTH = 6
"""Environment values shorter than this are not treated as secrets (flags like `1` or `true`)."""

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
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

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
