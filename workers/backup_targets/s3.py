"""An S3-compatible bucket, path-style (`<endpoint>/<bucket>/<prefix>/<key>`), over httpx with SigV4.

Uploads send the snapshot's sha256 as `x-amz-content-sha256`, so the server itself refuses a body that
is not the snapshot kobot recorded. A PUT is atomic on S3: a failed upload leaves no object.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from kobot import defaults
from kobot.clock import utcnow
from kobot.errors import StepFailedError
from kobot.settings_backups import S3Target
from workers.backup_targets import sigv4

CHUNK_BYTES = 1 << 20
ERROR_BODY_CHARS = 300
"""Characters of an S3 error body quoted in a failure (its <Code> and <Message>)."""


class S3Store:
    def __init__(self, *, name: str, config: S3Target) -> None:
        self.name = name
        self.kind = "s3"
        self.config = config

    def describe(self) -> str:
        c = self.config
        return f"{self.name} (s3 {c.endpoint_url.rstrip('/')}/{c.bucket}/{c.prefix})"

    def put(self, *, source: Path, key: str, sha256: str) -> None:
        size = source.stat().st_size
        with self._client() as client:
            response = client.send(
                self._request(
                    "PUT",
                    key,
                    payload_sha256=sha256,
                    extra={"content-length": str(size), "content-type": "application/octet-stream"},
                    content=_chunks(source),
                )
            )
            self._check(response, action="upload", key=key)

    def fetch(self, *, key: str, dest: Path) -> None:
        partial = dest.parent / f".{dest.name}.part"
        with self._client() as client:
            response = client.send(self._request("GET", key, payload_sha256=sigv4.EMPTY_SHA256), stream=True)
            try:
                if response.status_code != 200:
                    response.read()
                    self._check(response, action="download", key=key)
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes(CHUNK_BYTES):
                        out.write(chunk)
            finally:
                response.close()
        partial.chmod(0o600)
        partial.replace(dest)

    def delete(self, *, key: str) -> None:
        with self._client() as client:
            response = client.send(self._request("DELETE", key, payload_sha256=sigv4.EMPTY_SHA256))
            if response.status_code != 404:
                self._check(response, action="delete", key=key)

    # --- internals ---------------------------------------------------------------------------------
    def _client(self) -> httpx.Client:
        timeout = httpx.Timeout(
            defaults.BACKUP_TRANSFER_TIMEOUT_SECONDS, connect=defaults.BACKUP_CONNECT_TIMEOUT_SECONDS
        )
        return httpx.Client(timeout=timeout, verify=self.config.verify_tls, trust_env=False)

    def _request(
        self,
        method: str,
        key: str,
        *,
        payload_sha256: str,
        extra: dict[str, str] | None = None,
        content: Iterator[bytes] | None = None,
    ) -> httpx.Request:
        endpoint = self.config.endpoint_url.rstrip("/")
        path = (
            f"/{self.config.bucket}/{self.config.prefix}/{key}"
            if self.config.prefix
            else f"/{self.config.bucket}/{key}"
        )
        now = utcnow()
        headers = {
            "host": urlsplit(endpoint).netloc,
            "x-amz-content-sha256": payload_sha256,
            "x-amz-date": sigv4.amz_date(now),
            **(extra or {}),
        }
        headers["authorization"] = sigv4.authorization(
            method=method,
            path=path,
            query={},
            headers=headers,
            payload_sha256=payload_sha256,
            access_key_id=self.config.access_key_id,
            secret_key=self.config.secret_access_key.get_secret_value(),
            region=self.config.region,
            now=now,
        )
        url = httpx.URL(endpoint).copy_with(raw_path=sigv4.quote_path(path).encode())
        return httpx.Request(method, url, headers=headers, content=content)

    def _check(self, response: httpx.Response, *, action: str, key: str) -> None:
        if response.is_success:
            return
        raise StepFailedError(
            f"{action} of {key} on {self.describe()} failed: HTTP {response.status_code}",
            task=f"s3 {action}",
            error=response.text[:ERROR_BODY_CHARS],
        )


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk
