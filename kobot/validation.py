"""Checks on command argument values. Every error names the bad value and what is allowed.

The functions raise `ArgValueError` (a ValueError, so pydantic validators turn it into a
validation error) and return the normalized value, so a model validator can use them directly.
What a value that reaches automation may be (names, addresses, versions, backup ids) is decided once,
in kobot.automation_values, which the workers call again where they write the value; the checks
here add what only the command knows (supported versions, duplicates, suggestions).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationInfo

from kobot import automation_values
from kobot.automation_values import UnsafeValueError

SUPPORTED_KUBERNETES_VERSIONS: Mapping[str, int] = MappingProxyType(
    {"1.29": 15, "1.30": 14, "1.31": 12, "1.32": 8}
)
"""Minor release → newest patch the offline repository carries; every patch from .0 up to it is supported.

One place, so `create`, `plan`, `upgrade` and their help text never disagree on what can be installed.
"""

DEFAULT_KUBERNETES_VERSION = max(
    (f"{minor}.{patch}" for minor, patch in SUPPORTED_KUBERNETES_VERSIONS.items()),
    key=lambda v: tuple(int(p) for p in v.split(".")),
)
"""A new cluster gets the newest supported patch unless a version is given."""

MASTER_COUNTS = (1, 3, 5)
"""Control-plane sizes: odd so etcd keeps a majority; more than five only slows etcd writes down."""

WORKERS_MAX = 500
"""Largest worker count one command may ask for: beyond it a typo is likelier than a real need."""

BREAK_GLASS_MAX_CHARS = 200
"""A break-glass reason is an audit note, not an essay."""

SINCE_MAX = timedelta(days=366)
"""Audit look-back limit: older records have expired anyway (see JOB_RECORD_TTL_SECONDS)."""

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
_SINCE = re.compile(r"(\d+)\s*(m|min|h|d|w)")
_SINCE_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class ArgValueError(ValueError):
    """A bad argument value; `suggestions` are shown as 'did you mean'."""

    def __init__(self, message: str, *, suggestions: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.suggestions = list(suggestions)


T = TypeVar("T")


SURROGATE_CATEGORY = "Cs"
"""Unicode's category of surrogate code points: halves of UTF-16 pairs, never characters on their own.

A JSON escape like \\udfff decodes to one in Python, and UTF-8 cannot encode it, so it would break
every store write, key and log line it reaches.
"""


def has_surrogates(text: str) -> bool:
    """Whether `text` holds a lone surrogate (category Cs), which UTF-8 cannot encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def without_surrogates(text: str) -> str:
    """`text` with lone surrogates dropped: what a person typed survives, the broken halves do not."""
    if not has_surrogates(text):
        return text
    return "".join(ch for ch in text if unicodedata.category(ch) != SURROGATE_CATEGORY)


def scrub_surrogates(value: object) -> object:
    """`value` (JSON-like: dicts, lists, strings) with lone surrogates dropped from every string and key."""
    if isinstance(value, str):
        return without_surrogates(value)
    if isinstance(value, dict):
        return {scrub_surrogates(key): scrub_surrogates(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_surrogates(item) for item in value]
    return value


def time_zone(value: str) -> str:
    """An IANA time zone name (a schedule's `at` is read in it); settings and command arguments alike."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ArgValueError(
            f"unknown time zone {value!r}: an IANA name such as UTC, Asia/Shanghai or Europe/Berlin"
        ) from None
    return value


def _as_arg_error(check: Callable[[], T]) -> T:
    try:
        return check()
    except UnsafeValueError as exc:
        raise ArgValueError(str(exc)) from None


def dns_label(value: str, *, what: str) -> str:
    """A DNS-1123 label: 1-63 chars of lowercase letters, digits and '-', alphanumeric at both ends."""
    return _as_arg_error(lambda: automation_values.dns_label(value, what=what))


def cluster_name(value: str) -> str:
    """A DNS-1123 label that starts with a letter, so `scale workers 5` never reads 5 as a cluster."""
    return _as_arg_error(lambda: automation_values.cluster_name(value))


def node_name(value: str) -> str:
    return _as_arg_error(lambda: automation_values.node_name(value))


def masters(value: int) -> int:
    if value not in MASTER_COUNTS:
        allowed = ", ".join(str(n) for n in MASTER_COUNTS[:-1]) + f" or {MASTER_COUNTS[-1]}"
        raise ArgValueError(f"masters must be {allowed} (an odd count keeps etcd's majority), got {value}")
    return value


def kubernetes_version(value: str) -> str:
    """`1.N.P` (a leading v is accepted) from SUPPORTED_KUBERNETES_VERSIONS."""
    text = value.strip().lower()
    match = _VERSION.fullmatch(text) if text.isascii() else None
    if match is None:
        raise ArgValueError(
            f"version '{value}' is not of the form 1.N.P (like {DEFAULT_KUBERNETES_VERSION}); "
            f"supported: {supported_versions_text()}"
        )
    major, minor, patch = (int(g) for g in match.groups())
    newest = SUPPORTED_KUBERNETES_VERSIONS.get(f"{major}.{minor}")
    if newest is None or patch > newest:
        raise ArgValueError(f"version {value} is not supported; supported: {supported_versions_text()}")
    return f"{major}.{minor}.{patch}"


def supported_versions_text() -> str:
    return ", ".join(f"{minor}.0–{minor}.{patch}" for minor, patch in SUPPORTED_KUBERNETES_VERSIONS.items())


def cidr(value: str, *, what: str) -> str:
    """An IPv4 or IPv6 network with no host bits set, in canonical form."""
    text = value.strip()
    if "/" not in text:
        raise ArgValueError(
            f"{what} '{value}' is not a network: give an address and a prefix, like 10.244.0.0/16"
        )
    try:
        return _as_arg_error(lambda: automation_values.cidr(text, what=what))
    except ArgValueError:
        if "%" in text or not text.isascii():
            raise
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ArgValueError(f"{what} '{value}' is not a valid network like 10.244.0.0/16") from None
    raise ArgValueError(
        f"{what} '{value}' has host bits set; did you mean {network}?", suggestions=[str(network)]
    )


def cidrs_disjoint(*, pod_cidr: str, service_cidr: str) -> None:
    pods = ipaddress.ip_network(pod_cidr)
    services = ipaddress.ip_network(service_cidr)
    if pods.version == services.version and pods.overlaps(services):
        raise ArgValueError(
            f"pod_cidr {pod_cidr} overlaps service_cidr {service_cidr}; pods and services need own ranges"
        )


def host_address(value: str, *, allow_local: bool = False) -> str:
    """A plain unicast IPv4 or IPv6 address, or a DNS name made of DNS-1123 labels; never this
    machine (unless `allow_local`, the test-only setting), a zone id, multicast, link-local or a
    metadata address (kobot.automation_values)."""
    return _as_arg_error(lambda: automation_values.host_address(value, allow_local=allow_local))


def api_vip(value: str | None, info: ValidationInfo) -> str | None:
    """A free IP address for the API's VIP (keepalived): an address, never a name, since keepalived
    announces an address; the other `host_address` rules apply."""
    if value is None:
        return None
    try:
        address = str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ArgValueError(
            f"api_vip '{value}' is not an IP address; give a free one, like 10.0.0.100"
        ) from None
    return host_address_in_context(address, info)


def vip_outside_networks(*, api_vip: str, pod_cidr: str, service_cidr: str) -> None:
    """The VIP is a host address of the machines' network, so it may not fall in the pod or service range."""
    address = ipaddress.ip_address(api_vip)
    for what, network in (("pod_cidr", pod_cidr), ("service_cidr", service_cidr)):
        if address in ipaddress.ip_network(network):
            raise ArgValueError(
                f"api_vip {api_vip} is inside {what} {network}; take a free address of the machines' network"
            )


def host_address_in_context(value: str, info: ValidationInfo) -> str:
    """`host_address` for a pydantic validator: the parse context says whether local hosts are allowed."""
    return host_address(value, allow_local=automation_values.local_hosts_allowed(info.context))


def optional_host_address_in_context(value: str | None, info: ValidationInfo) -> str | None:
    """`host_address_in_context` for an optional argument."""
    return None if value is None else host_address_in_context(value, info)


def host_list_in_context(values: Sequence[str], info: ValidationInfo) -> list[str]:
    """`host_list` for a pydantic validator: the parse context says whether local hosts are allowed."""
    return host_list(values, allow_local=automation_values.local_hosts_allowed(info.context))


def host_list(values: Sequence[str], *, allow_local: bool = False) -> list[str]:
    hosts = [host_address(value, allow_local=allow_local) for value in values]
    seen: set[str] = set()
    for host in hosts:
        if host in seen:
            raise ArgValueError(f"host {host} is listed twice; each machine may have one role")
        seen.add(host)
    return hosts


def zone_list(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(dns_label(value, what="zone") for value in values))


def job_id(value: int | str) -> int:
    """A job number as shown in chat: `42` or `#42`."""
    text = str(value).strip().removeprefix("#")
    if not text.isdigit() or int(text) < 1:
        raise ArgValueError(f"job '{value}' is not a job number: give a positive number like 42 or #42")
    return int(text)


def since(value: str) -> str:
    """`30m`, `1h`, `2d`, `1w` or an ISO date/time; returned normalized (no spaces, lowercase unit)."""
    text = value.strip().lower()
    match = _SINCE.fullmatch(text)
    if match is not None:
        amount, unit = int(match.group(1)), match.group(2)
        delta = timedelta(**{_SINCE_UNITS[unit]: amount})
        if amount < 1 or delta > SINCE_MAX:
            raise ArgValueError(f"since '{value}' must be between 1m and {SINCE_MAX.days}d")
        return f"{amount}{unit}"
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ArgValueError(
            f"since '{value}' is not a time span or date: use 30m, 1h, 2d, 1w or a date like 2025-01-31"
        ) from None
    return moment.isoformat() if any(c in value for c in "T:") else moment.date().isoformat()


def since_start(value: str, *, now: datetime) -> datetime:
    """The moment an audit query starts from, for a value `since` accepted."""
    match = _SINCE.fullmatch(value)
    if match is not None:
        return now - timedelta(**{_SINCE_UNITS[match.group(2)]: int(match.group(1))})
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def break_glass(value: str) -> str:
    reason = " ".join(value.split())
    if not reason or reason.lower() in ("true", "yes"):
        raise ArgValueError('break_glass needs a reason: --break-glass "why this cannot wait"')
    if len(reason) > BREAK_GLASS_MAX_CHARS:
        raise ArgValueError(
            f"break_glass reason is {len(reason)} characters; at most {BREAK_GLASS_MAX_CHARS}"
        )
    return reason


def backup_id(value: str) -> str:
    """Backup ids are made by kobot; anything else (paths, spaces) is refused before it reaches a job."""
    return _as_arg_error(lambda: automation_values.backup_id(value))
