"""Downloads for `bundle build`: upstream checksums, and files fetched resumably and verified.

A file already in the bundle whose sha256 matches is kept; a `.part` left by an interrupted build is
continued with an HTTP range request (restarted when the server ignores the range); a download whose
sha256 differs from its source's is removed and the build stops, naming the file.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx

from kobot.errors import StepFailedError
from workers.bundle import defaults
from workers.bundle.manifest import SHA256, ChecksumKind, ChecksumSource, PlannedFile


def rewritten(location: str, upstream: dict[str, str]) -> str:
    """`location` with the longest matching upstream prefix replaced (a site's own upstream mirror)."""
    for prefix in sorted(upstream, key=len, reverse=True):
        if location.startswith(prefix):
            return upstream[prefix] + location[len(prefix) :]
    return location


def expected_sha256(http: httpx.Client, source: ChecksumSource, *, upstream: dict[str, str]) -> str | None:
    """The sha256 `source` publishes (None for UNPUBLISHED); a missing or malformed one stops the build."""
    if source.kind is ChecksumKind.UNPUBLISHED:
        return None
    url = rewritten(source.url, upstream)
    text = _small_get(http, url).decode("utf-8", "replace")
    if source.kind is ChecksumKind.SHA256_FILE:
        words = text.split()
        if words and SHA256.fullmatch(words[0].lower()):
            return words[0].lower()
        raise StepFailedError(f"{url} holds no sha256", task="checksum")
    for line in text.splitlines():
        match = re.fullmatch(r"([0-9a-fA-F]{64})\s+\*?(\S+)", line.strip())
        if match and match.group(2).rsplit("/", 1)[-1] == source.entry:
            return match.group(1).lower()
    raise StepFailedError(f"{url} lists no sha256 for {source.entry}", task="checksum")


def fetch_file(
    http: httpx.Client, planned: PlannedFile, *, target: Path, upstream: dict[str, str]
) -> tuple[str, int, ChecksumKind]:
    """Fetch `planned` to `target` unless it is there already with the right sha256: (sha256, size, how
    it was verified)."""
    expected = expected_sha256(http, planned.checksum, upstream=upstream)
    if expected is not None and target.is_file() and sha256_of(target) == expected:
        return expected, target.stat().st_size, planned.checksum.kind
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    url = rewritten(planned.url, upstream)
    _download(http, url, part=part)
    got = sha256_of(part)
    if expected is not None and got != expected:
        part.unlink()
        raise StepFailedError(
            f"{planned.path}: sha256 {got} of {url} is not the {expected} its checksum source lists; "
            "removed, the next build fetches it again",
            task="verify",
        )
    part.replace(target)
    return got, target.stat().st_size, planned.checksum.kind


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(defaults.DOWNLOAD_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _download(http: httpx.Client, url: str, *, part: Path) -> None:
    have = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with http.stream("GET", url, headers=headers) as response:
            if response.status_code == httpx.codes.REQUESTED_RANGE_NOT_SATISFIABLE:
                return  # the part is already whole; the checksum decides
            if response.status_code not in (httpx.codes.OK, httpx.codes.PARTIAL_CONTENT):
                raise StepFailedError(f"{url} answered HTTP {response.status_code}", task="download")
            resumed = response.status_code == httpx.codes.PARTIAL_CONTENT
            written = have if resumed else 0
            with part.open("ab" if resumed else "wb") as out:
                for chunk in response.iter_bytes(defaults.DOWNLOAD_CHUNK_BYTES):
                    written += len(chunk)
                    if written > defaults.FILE_MAX_BYTES:
                        raise StepFailedError(
                            f"{url} is larger than {defaults.FILE_MAX_BYTES} bytes", task="download"
                        )
                    out.write(chunk)
    except httpx.HTTPError as exc:
        raise StepFailedError(
            f"{url} could not be downloaded ({type(exc).__name__}); run the build again to resume",
            task="download",
        ) from None


def _small_get(http: httpx.Client, url: str) -> bytes:
    try:
        with http.stream("GET", url) as response:
            if response.status_code != httpx.codes.OK:
                raise StepFailedError(f"{url} answered HTTP {response.status_code}", task="checksum")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > defaults.CHECKSUM_FILE_MAX_BYTES:
                    raise StepFailedError(f"{url} is too large for a checksum file", task="checksum")
            return bytes(body)
    except httpx.HTTPError as exc:
        raise StepFailedError(f"{url} could not be read ({type(exc).__name__})", task="checksum") from None
