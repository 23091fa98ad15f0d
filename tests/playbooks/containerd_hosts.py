"""containerd's registry host resolution, as data: which endpoints a pull of an image tries.

The rules of containerd's `remotes/docker/config/hosts.go` (ConfigureHosts, HostDirFromRoot,
loadHostDir) for a CRI `config_path`: the directory `certs.d/<registry host>` if it exists, else
`certs.d/_default`; in its hosts.toml the `[host."…"]` entries in file order, then `server` last; a
registry without any directory is reached on https (docker.io at registry-1.docker.io), except
localhost, which is tried on http.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

DOCKER_HUB = "docker.io"


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    skip_verify: bool = False


def registry_host(image: str) -> str:
    """The registry an image reference names (Docker's rule: a first component with '.' or ':', or
    'localhost', is a host; anything else is on Docker Hub)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return DOCKER_HUB


def _endpoint(url: str, *, skip_verify: bool = False) -> Endpoint:
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "https", url
    return Endpoint(scheme=scheme, host=rest.rstrip("/").split("/")[0], skip_verify=skip_verify)


def endpoints(image: str, *, certs_d: Path | None) -> list[Endpoint]:
    """Every endpoint containerd tries, in order, for a pull of `image`."""
    host = registry_host(image)
    directory = None
    if certs_d is not None:
        for candidate in (certs_d / host, certs_d / "_default"):
            if candidate.is_dir():
                directory = candidate
                break
    if directory is not None and (directory / "hosts.toml").is_file():
        config = tomllib.loads((directory / "hosts.toml").read_text(encoding="utf-8"))
        found = [
            _endpoint(url, skip_verify=bool(settings.get("skip_verify", False)))
            for url, settings in config.get("host", {}).items()
        ]
        # the server (or, without one, the registry itself) is always tried last
        return [*found, _endpoint(config["server"]) if "server" in config else _default(host)]
    return [_default(host)]


def _default(host: str) -> Endpoint:
    if host == DOCKER_HUB:
        return Endpoint(scheme="https", host="registry-1.docker.io")
    if host.split(":")[0] in ("localhost", "127.0.0.1", "::1"):
        return Endpoint(scheme="http", host=host)
    return Endpoint(scheme="https", host=host)
