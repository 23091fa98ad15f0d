"""Network filters the preflight needs; ansible-core has no CIDR arithmetic of its own.

`cidr_overlaps(a, b)`: True when two networks share an address.
`cidr_contains(cidr, address)`: True when the address lies inside the network.
`cidr_valid(value)`: True when the value parses as a network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any


def cidr_valid(value: Any) -> bool:
    try:
        ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return False
    return True


def cidr_overlaps(first: str, second: str) -> bool:
    a = ipaddress.ip_network(str(first), strict=False)
    b = ipaddress.ip_network(str(second), strict=False)
    return a.version == b.version and a.overlaps(b)  # type: ignore[arg-type]


def cidr_contains(cidr: str, address: str) -> bool:
    network = ipaddress.ip_network(str(cidr), strict=False)
    try:
        ip = ipaddress.ip_address(str(address))
    except ValueError:
        return False
    return ip.version == network.version and ip in network


class FilterModule:
    """Registers the filters under short names (playbook-adjacent filter_plugins are loaded by Ansible)."""

    def filters(self) -> dict[str, Callable[..., bool]]:
        return {"cidr_valid": cidr_valid, "cidr_overlaps": cidr_overlaps, "cidr_contains": cidr_contains}
