"""Charts from the chart repository named in settings (an HTTP repository: `index.yaml` + archives).

Offline sites point it at their own mirror. The archive's SHA-256 must match the index's digest, so a
mirror that serves something else than it lists is refused instead of rendered.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import yaml

from kobot.errors import StepFailedError
from workers.addons.defaults import CHART_ARCHIVE_MAX_BYTES, CHART_FETCH_TIMEOUT_SECONDS

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_FILE_PART = re.compile(r"[A-Za-z0-9._+-]+")


def fetch_index(*, repository: str) -> dict[str, Any]:
    """The repository's `index.yaml`, parsed: what the app store lists."""
    base = repository.rstrip("/") + "/"
    with httpx.Client(timeout=CHART_FETCH_TIMEOUT_SECONDS, follow_redirects=False) as http:
        index = _get(http, urljoin(base, "index.yaml"), what="the chart repository's index.yaml")
    try:
        loaded = yaml.safe_load(index) or {}
    except yaml.YAMLError:
        raise StepFailedError(f"the chart repository's index.yaml at {base} is not YAML") from None
    if not isinstance(loaded, dict):
        raise StepFailedError(f"the chart repository's index.yaml at {base} is not a chart index")
    return loaded


def fetch_chart(*, repository: str, name: str, version: str, into: Path) -> Path:
    """Download chart `name` at `version` into `into` (kept when already there and its digest holds)."""
    base = repository.rstrip("/") + "/"
    target = into / f"{_file_part(name)}-{_file_part(version)}.tgz"
    with httpx.Client(timeout=CHART_FETCH_TIMEOUT_SECONDS, follow_redirects=False) as http:
        index = _get(http, urljoin(base, "index.yaml"), what="the chart repository's index.yaml")
        entry = _entry(yaml.safe_load(index) or {}, name=name, version=version, repository=base)
        digest = _digest(entry, name=name, version=version)
        if target.is_file() and _sha256(target.read_bytes()) == digest:
            return target
        urls = entry.get("urls") or []
        if not urls:
            raise StepFailedError(f"the chart repository lists no archive for {name} {version}")
        data = _get(http, urljoin(base, str(urls[0])), what=f"the {name} {version} archive")
    if _sha256(data) != digest:
        raise StepFailedError(
            f"the {name} {version} archive does not match the digest the repository's index lists"
        )
    into.mkdir(parents=True, exist_ok=True, mode=0o700)
    target.write_bytes(data)
    return target


def _file_part(value: str) -> str:
    """A chart's name or version as part of the archive's file name: one plain name, never a path."""
    if not _FILE_PART.fullmatch(value) or value in (".", ".."):
        raise StepFailedError(
            f"chart name or version {value!r} must be letters, digits and ._+- only "
            "(like 1.2.3 or 65.1.0+up1)"
        )
    return value


def _digest(entry: dict[str, Any], *, name: str, version: str) -> str:
    """The SHA-256 the index lists for the archive. Without one kobot cannot tell the archive is the one
    listed, so the chart is refused rather than rendered unverified (an all-digit digest that YAML read
    as a number is refused too: its leading zeros are gone)."""
    digest = entry.get("digest")
    if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
        raise StepFailedError(
            f"the chart repository's index lists no usable sha256 digest for {name} {version}: "
            "kobot installs only charts whose archive it can verify "
            "(regenerate the index with `helm repo index`)"
        )
    return digest.lower()


def _entry(index: dict[str, Any], *, name: str, version: str, repository: str) -> dict[str, Any]:
    versions = (index.get("entries") or {}).get(name) or []
    for entry in versions:
        if str(entry.get("version")) == version:
            return dict(entry)
    listed = ", ".join(str(e.get("version")) for e in versions) or "none"
    raise StepFailedError(
        f"the chart repository {repository} has no {name} {version} (it lists: {listed}); "
        "mirror that version first"
    )


def _get(http: httpx.Client, url: str, *, what: str) -> bytes:
    try:
        with http.stream("GET", url) as answer:
            if answer.status_code != 200:
                raise StepFailedError(f"{what} could not be fetched: HTTP {answer.status_code} from {url}")
            chunks: list[bytes] = []
            size = 0
            for chunk in answer.iter_bytes():
                size += len(chunk)
                if size > CHART_ARCHIVE_MAX_BYTES:
                    raise StepFailedError(f"{what} is larger than {CHART_ARCHIVE_MAX_BYTES} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise StepFailedError(f"{what} could not be fetched from {url}: {type(exc).__name__}") from None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
