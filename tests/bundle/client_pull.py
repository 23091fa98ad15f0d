"""Runs ON a test host (its own python3, stdin of ssh): pull an image as containerd would through the
mirror config the containerd role wrote (`certs.d/<registry>/hosts.toml`), verifying the registry's
certificate with the CA file its `ca =` names and checking every digest, or fetch a file from the
repository by its sha256. `pull-ignoring-ca` pulls the same way but trusts only the host's system CAs,
as a client kobot did not configure would. Prints a JSON list, one object per image or file."""

import gzip
import hashlib
import io
import json
import ssl
import sys
import tarfile
import tomllib
import urllib.request
from typing import Any

ACCEPT = ",".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


def _get(url: str, accept: str | None = None, context: ssl.SSLContext | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10, context=context) as answer:
        body: bytes = answer.read()
        return body


def pull(image: str, *, use_ca: bool = True) -> dict[str, Any]:
    registry, rest = image.split("/", 1)
    repository, tag = rest.rsplit(":", 1)
    with open(f"/etc/containerd/certs.d/{registry}/hosts.toml", "rb") as config:
        hosts = tomllib.load(config)["host"]
    endpoint, host = next((url, host) for url, host in hosts.items() if "pull" in host["capabilities"])
    # containerd verifies an https endpoint with the CA file `ca` names; here with that CA alone
    ca = host.get("ca")
    context = ssl.create_default_context(cafile=ca if use_ca else None)
    base = f"{endpoint.rstrip('/')}/v2/{repository}"
    body = _get(f"{base}/manifests/{tag}?ns={registry}", ACCEPT, context)
    manifest = json.loads(body)
    for blob in [manifest["config"], *manifest["layers"]]:
        data = _get(f"{base}/blobs/{blob['digest']}?ns={registry}", context=context)
        if "sha256:" + hashlib.sha256(data).hexdigest() != blob["digest"]:
            raise SystemExit(f"blob {blob['digest']} does not match its digest")
    layer = _get(f"{base}/blobs/{manifest['layers'][0]['digest']}?ns={registry}", context=context)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
        member = tar.extractfile("etc/kobot-test-image")
        if member is None:
            raise SystemExit("the image's layer holds no etc/kobot-test-image")
        content = member.read().decode()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    return {"endpoint": endpoint, "ca": ca, "digest": digest, "content": content}


def fetch(url: str, sha256: str) -> dict[str, Any]:
    data = _get(url)
    return {"sha256": hashlib.sha256(data).hexdigest(), "matches": hashlib.sha256(data).hexdigest() == sha256}


if __name__ == "__main__":
    # several images (or URL SHA256 pairs) per run: one ssh connection and one interpreter start for all
    what, *rest = sys.argv[1:]
    if what in ("pull", "pull-ignoring-ca"):
        answers = [pull(image, use_ca=what == "pull") for image in rest]
    else:
        answers = [fetch(url, sha256) for url, sha256 in zip(rest[::2], rest[1::2], strict=True)]
    print(json.dumps(answers))
