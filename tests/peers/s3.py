"""An S3-compatible object store on loopback: path-style PUT, GET and DELETE of objects, every request's
AWS Signature Version 4 checked with this module's own implementation (written from the AWS
documentation, independent of the client's), and `x-amz-content-sha256` checked against the body.

A request with a wrong signature gets S3's 403 `SignatureDoesNotMatch`, one whose payload hash differs
gets 400 `XAmzContentSHA256Mismatch`. `objects` holds what was stored; `requests` records
(method, path) in order.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import quote, unquote

from aiohttp import web

from tests.peers.loopback import LoopbackPeer, Recording

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/s3/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<sig>[0-9a-f]{64})"
)


def _error(status: int, code: str) -> web.Response:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{code}</Message></Error>'
    )
    return web.Response(status=status, text=body, content_type="application/xml")


class S3Peer(LoopbackPeer):
    thread_name = "s3-peer"

    def __init__(self, *, access_key_id: str, secret_key: str, region: str = "us-east-1") -> None:
        super().__init__()
        self.access_key_id = access_key_id
        self.secret_key = secret_key
        self.region = region
        self.objects: dict[str, bytes] = {}
        self.requests: Recording[tuple[str, str]] = Recording()

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{path:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.add((request.method, request.raw_path))
        problem = self._check_signature(request, body)
        if problem is not None:
            return problem
        key = unquote(request.raw_path)
        if request.method == "PUT":
            self.objects[key] = body
            return web.Response(status=200, headers={"ETag": f'"{hashlib.md5(body).hexdigest()}"'})
        if request.method == "GET":
            if key not in self.objects:
                return _error(404, "NoSuchKey")
            return web.Response(status=200, body=self.objects[key], content_type="application/octet-stream")
        if request.method == "DELETE":
            self.objects.pop(key, None)
            return web.Response(status=204)
        return _error(405, "MethodNotAllowed")

    def _check_signature(self, request: web.Request, body: bytes) -> web.Response | None:
        match = _AUTH.fullmatch(request.headers.get("Authorization", ""))
        if match is None or match["key"] != self.access_key_id or match["region"] != self.region:
            return _error(403, "AccessDenied")
        payload_hash = request.headers.get("x-amz-content-sha256", "")
        if hashlib.sha256(body).hexdigest() != payload_hash:
            return _error(400, "XAmzContentSHA256Mismatch")
        signed = match["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            return _error(403, "AccessDenied")
        canonical_headers = "".join(f"{h}:{' '.join(request.headers.get(h, '').split())}\n" for h in signed)
        canonical = "\n".join(
            [
                request.method,
                quote(unquote(request.raw_path), safe="/-_.~"),
                "",
                canonical_headers,
                match["signed"],
                payload_hash,
            ]
        )
        amz_date = request.headers["x-amz-date"]
        scope = f"{match['date']}/{self.region}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        key = f"AWS4{self.secret_key}".encode()
        for part in (match["date"], self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, match["sig"]):
            return _error(403, "SignatureDoesNotMatch")
        return None
