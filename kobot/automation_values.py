"""What may reach automation: one home for the checks on every value kobot writes into an Ansible
inventory, Ansible extra vars, Terraform variables or a file path, and for marking such values inert.

Chat arguments are checked here when a command is parsed (kobot.validation calls these functions)
and again where each value is written, because a value can also come from a record in the store, and
a record can be older than a check or edited by hand. Values that come from users or records are
written with Ansible's own `!unsafe` tag, so even one that slipped past every check is never rendered
as a Jinja template (`kobot.automation_yaml` writes them).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

NAME_MAX_CHARS = 63
"""DNS-1123 label limit; cluster and node names end up in hostnames, labels and Terraform keys."""

HOSTNAME_MAX_CHARS = 253
"""DNS name limit for a host address."""

PATH_COMPONENT_MAX_CHARS = 128
"""Longest file or directory name kobot builds from an id (a backup id, a job id, a cluster name)."""

LOCAL_NAMES = frozenset(
    {"localhost", "localhost.localdomain", "localhost4", "localhost6", "ip6-localhost", "ip6-loopback"}
)
"""Names that mean "this machine" in /etc/hosts on common Linux distributions."""

METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    }
)
"""Cloud instance metadata services: they hand out the credentials of the machine kobot runs on."""

THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
"""RFC 1122 "this host on this network": Linux connects 0.x.y.z to itself."""

LIMITED_BROADCAST = ipaddress.ip_address("255.255.255.255")

ALLOW_LOCAL_HOSTS = "allow_local_hosts"
"""Validation context key carrying the test-only allow_local_hosts setting into pydantic validators."""

_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_SEMVER = re.compile(r"(0|[1-9]\d{0,3})\.(0|[1-9]\d{0,3})\.(0|[1-9]\d{0,3})")
_BACKUP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_PATH_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def local_hosts_allowed(context: Mapping[str, Any] | None) -> bool:
    """Whether a pydantic validation context lets hosts be this machine (tests only)."""
    return bool((context or {}).get(ALLOW_LOCAL_HOSTS))


class UnsafeValueError(ValueError):
    """A value kobot will not hand to automation; the message names the value and what is allowed."""


class Untrusted(str):
    """A string from a user or a record. Written with Ansible's `!unsafe` tag: never templated."""

    __slots__ = ()


def untrusted(value: Any) -> Any:
    """`value` with every string in it (recursively, mapping keys excepted) marked `Untrusted`."""
    if isinstance(value, str):
        return Untrusted(value)
    if isinstance(value, Mapping):
        return {key: untrusted(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [untrusted(inner) for inner in value]
    return value


# --- names, versions, ids ------------------------------------------------------------------------------
def _plain(value: object, *, what: str) -> str:
    if not isinstance(value, str):
        raise UnsafeValueError(f"{what} must be text, got {type(value).__name__}")
    return value


def dns_label(value: str, *, what: str) -> str:
    """A DNS-1123 label: 1-63 chars of lowercase letters, digits and '-', alphanumeric at both ends."""
    raw = _plain(value, what=what)
    name = raw.strip().lower()
    if len(name) > NAME_MAX_CHARS:
        raise UnsafeValueError(
            f"{what} '{value}' is {len(name)} characters long; at most {NAME_MAX_CHARS} are allowed"
        )
    if not raw.isascii() or not _LABEL.fullmatch(name):
        raise UnsafeValueError(
            f"{what} '{value}' is not a valid name: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (like prod-1)"
        )
    return name


OFFLINE_REPOSITORY_SCOPE = "offline-repository"
"""The `cluster` of the offline repository's jobs (their lock, approvals, job listing and secrets)."""

RESERVED_CLUSTER_NAMES = frozenset({OFFLINE_REPOSITORY_SCOPE})
"""Scopes kobot keeps for itself: a cluster of that name would share their lock, approvals and secrets."""


def cluster_name(value: str) -> str:
    """A DNS-1123 label that starts with a letter, so `scale workers 5` never reads 5 as a cluster."""
    name = dns_label(value, what="cluster name")
    if not name[0].isalpha():
        raise UnsafeValueError(f"cluster name '{value}' must start with a letter (like prod or dev-2)")
    if name in RESERVED_CLUSTER_NAMES:
        raise UnsafeValueError(
            f"cluster name '{value}' is kept for kobot's own jobs "
            f"(reserved: {', '.join(sorted(RESERVED_CLUSTER_NAMES))})"
        )
    return name


def node_name(value: str) -> str:
    return dns_label(value, what="node name")


def semver(value: str, *, what: str = "version") -> str:
    """`N.N.N` (a leading v is dropped); whether kobot supports it is the command's concern."""
    raw = _plain(value, what=what)
    text = raw.strip().lower().removeprefix("v")
    if not raw.isascii() or not _SEMVER.fullmatch(text):
        raise UnsafeValueError(f"{what} '{value}' is not of the form 1.N.P (like 1.31.4)")
    return text


def backup_id(value: str) -> str:
    """Backup ids are made by kobot; anything else (paths, spaces) is refused before it reaches a job."""
    text = _plain(value, what="backup id").strip()
    if not text.isascii() or not _BACKUP_ID.fullmatch(text) or ".." in text:
        raise UnsafeValueError(
            f"backup '{value}' is not a backup id: letters, digits, '.', '_', ':' and '-' only"
        )
    return text


def sha256_hex(value: str) -> str:
    text = _plain(value, what="checksum")
    if not _SHA256.fullmatch(text):
        raise UnsafeValueError(f"checksum '{value}' is not 64 lowercase hex digits (sha256)")
    return text


def cidr(value: str, *, what: str) -> str:
    """An IPv4 or IPv6 network with no host bits set, in canonical form."""
    text = _plain(value, what=what).strip()
    if "%" in text or not text.isascii():
        raise UnsafeValueError(f"{what} '{value}' is not a network like 10.244.0.0/16 (no zone ids)")
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError:
        raise UnsafeValueError(f"{what} '{value}' is not a network like 10.244.0.0/16") from None


# --- host addresses ------------------------------------------------------------------------------------
def forbidden_address_reason(address: IpAddress) -> str | None:
    """Why an address must never be a cluster host, or None: these reach kobot's own machine or the
    metadata service of the cloud it runs in instead of a machine the cluster owns."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"is an IPv4 address in IPv6 form; write it as {address.ipv4_mapped}"
        if address.scope_id is not None:
            return "carries a zone id (%...); give the address alone"
    if address in METADATA_ADDRESSES:
        return "is a cloud metadata address"
    if address.is_loopback:
        return "is a loopback address (this machine)"
    if address.is_unspecified or (isinstance(address, ipaddress.IPv4Address) and address in THIS_NETWORK):
        return "is an unspecified address (this machine)"
    if address.is_multicast:
        return "is a multicast address"
    if address == LIMITED_BROADCAST:
        return "is the broadcast address"
    if address.is_link_local:
        return "is a link-local address"
    if address.is_reserved:
        return "is a reserved address"
    return None


def is_local_name(name: str) -> bool:
    """True for names every resolver maps to this machine (RFC 6761: *.localhost)."""
    text = name.lower().rstrip(".")
    return text in LOCAL_NAMES or text.endswith(".localhost")


def is_local_address(value: str) -> bool:
    """True for a host that is kobot's own machine: a local name, loopback or unspecified address."""
    if is_local_name(value):
        return True
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    address = mapped or address
    return address.is_loopback or address.is_unspecified


def _legacy_ipv4(text: str) -> bool:
    """True for text the C resolver reads as IPv4 although it is no dotted quad: `127.1`, `0x7f000001`,
    `2130706433`, `017700000001`. getaddrinfo would connect to those addresses, so none is a name."""
    try:
        socket.inet_aton(text)
    except (OSError, ValueError):
        return False
    return True


def host_address(value: str, *, allow_local: bool = False) -> str:
    """A plain unicast IPv4/IPv6 address (no zone id) or a DNS name, normalized.

    Loopback, unspecified, multicast, broadcast, link-local and metadata addresses are refused in
    every spelling, and so are names that always mean this machine; `allow_local` (tests only) lets
    loopback addresses and local names through.
    """
    raw = _plain(value, what="host")
    text = raw.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if not text or not raw.isascii() or any(unicodedata.category(c)[0] == "C" for c in text):
        raise UnsafeValueError(
            f"host '{value}' is not an IPv4/IPv6 address or a DNS name (like node-1.example.com)"
        )
    if "%" in text:
        raise UnsafeValueError(f"host '{value}' carries a zone id (%...); give the address alone")
    try:
        address: IpAddress | None = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if address is not None:
        canonical = str(address)
        if allow_local and is_local_address(canonical):
            return canonical
        reason = forbidden_address_reason(address)
        if reason is not None:
            raise UnsafeValueError(f"host '{value}' {reason}; give the address of a cluster machine")
        return canonical
    name = text.removesuffix(".")
    labels = name.split(".")
    if _legacy_ipv4(name):
        raise UnsafeValueError(
            f"host '{value}' is an IPv4 address in a legacy spelling; write it as four decimal "
            "numbers like 10.0.0.5"
        )
    if (
        len(name) > HOSTNAME_MAX_CHARS
        or labels[-1].isdigit()
        or not all(_LABEL.fullmatch(label) for label in labels)
    ):
        raise UnsafeValueError(
            f"host '{value}' is not an IPv4/IPv6 address or a DNS name (like node-1.example.com)"
        )
    if is_local_name(name) and not allow_local:
        raise UnsafeValueError(f"host '{value}' names this machine; give the address of a cluster machine")
    return name


def check_resolved(host: str, *, allow_local: bool = False) -> None:
    """Refuse a DNS name that resolves to a forbidden address. A name that does not resolve (yet) is
    left to the SSH wait and Ansible, which say so; an address literal needs no lookup."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return
    for info in infos:
        resolved = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if allow_local and is_local_address(str(resolved)):
            continue
        reason = forbidden_address_reason(resolved)
        if reason is not None:
            raise UnsafeValueError(
                f"host {host} resolves to {resolved}, which {reason}; kobot only runs automation "
                "against cluster machines"
            )


def check_hosts_resolved(hosts: Iterable[str], *, allow_local: bool = False) -> None:
    for host in dict.fromkeys(hosts):
        check_resolved(host, allow_local=allow_local)


# --- paths ---------------------------------------------------------------------------------------------
def path_component(value: str, *, what: str) -> str:
    """One file or directory name built from an id: no separators, no `..`, nothing hidden."""
    text = _plain(value, what=what)
    if not text.isascii() or not _PATH_COMPONENT.fullmatch(text) or ".." in text:
        raise UnsafeValueError(
            f"{what} '{value}' cannot name a file: letters, digits, '.', '_' and '-' only, "
            f"at most {PATH_COMPONENT_MAX_CHARS} characters"
        )
    return text


def path_inside(base: Path, *components: str, what: str) -> Path:
    """`base/components...`, each component checked, and the result proven to stay under `base`."""
    path = base.joinpath(*(path_component(c, what=what) for c in components))
    root = base.resolve()
    if not path.resolve().is_relative_to(root):
        raise UnsafeValueError(f"{what} '{'/'.join(components)}' leads outside {base}")
    return path
