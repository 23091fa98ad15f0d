"""AWS Signature Version 4 for S3 requests (header-based, one chunk: the payload's sha256 is known).

https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html: a canonical request
(method, URI, query, the signed headers, the payload hash), a string to sign naming the date, region
and service, and an HMAC chain from the secret key. Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
"""x-amz-content-sha256 of a request without a body (GET, DELETE)."""


def amz_date(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}"


def quote_path(path: str) -> str:
    """A URI path as S3 signs and sends it: each byte but unreserved characters and `/` encoded once."""
    return quote(path, safe="/-_.~")


def canonical_request(
    *, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], payload_sha256: str
) -> tuple[str, str]:
    """The canonical request and its signed-header list. S3 paths are encoded once, `/` kept."""
    canonical_path = quote_path(path)
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )
    lowered = {k.lower(): " ".join(v.strip().split()) for k, v in headers.items()}
    names = sorted(lowered)
    canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in names)
    signed = ";".join(names)
    request = "\n".join([method, canonical_path, canonical_query, canonical_headers, signed, payload_sha256])
    return request, signed


def signature(*, secret_key: str, date: str, region: str, service: str, string_to_sign: str) -> str:
    key = hmac.new(f"AWS4{secret_key}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def authorization(
    *,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
    access_key_id: str,
    secret_key: str,
    region: str,
    now: datetime,
    service: str = "s3",
) -> str:
    """The Authorization header of a request whose `headers` already hold host, x-amz-date and
    x-amz-content-sha256 (every header given is signed)."""
    request, signed = canonical_request(
        method=method, path=path, query=query, headers=headers, payload_sha256=payload_sha256
    )
    scope = f"{now:%Y%m%d}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date(now), scope, hashlib.sha256(request.encode()).hexdigest()]
    )
    sig = signature(
        secret_key=secret_key,
        date=f"{now:%Y%m%d}",
        region=region,
        service=service,
        string_to_sign=string_to_sign,
    )
    return f"{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={signed}, Signature={sig}"
