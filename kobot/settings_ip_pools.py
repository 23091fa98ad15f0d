"""Per-zone IP pool settings: the address ranges kobot may hand to machines it creates (workers.ippool)."""

from __future__ import annotations

import ipaddress
from typing import Self

from pydantic import BaseModel, ConfigDict, model_validator


class IpPoolConfig(BaseModel):
    """One zone's pool: machines get addresses `first`..`last` of `cidr`; `gateway` is never handed out."""

    model_config = ConfigDict(frozen=True)

    zone: str
    cidr: str
    first: str
    last: str
    gateway: str | None = None
    dns: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _range_inside_network(self) -> Self:
        network = ipaddress.IPv4Network(self.cidr, strict=True)
        first, last = ipaddress.IPv4Address(self.first), ipaddress.IPv4Address(self.last)
        hosts = (network.network_address, network.broadcast_address)
        for what, address in (("first", first), ("last", last)):
            if address not in network or (network.prefixlen < 31 and address in hosts):
                raise ValueError(f"pool {self.zone}: {what} {address} is not a host address of {network}")
        if int(last) < int(first):
            raise ValueError(f"pool {self.zone}: range {first}-{last} is empty")
        if self.gateway is not None and ipaddress.IPv4Address(self.gateway) not in network:
            raise ValueError(f"pool {self.zone}: gateway {self.gateway} is outside {network}")
        return self

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv4Network(self.cidr).prefixlen

    def hands_out(self, address: str) -> bool:
        """Whether `address` lies in the range this pool hands to machines."""
        try:
            value = ipaddress.ip_address(address)
        except ValueError:
            return False
        first, last = ipaddress.IPv4Address(self.first), ipaddress.IPv4Address(self.last)
        return value.version == 4 and first <= value <= last

    def size(self) -> int:
        """Addresses the pool can hand out (the gateway excluded when it lies in the range)."""
        first, last = int(ipaddress.IPv4Address(self.first)), int(ipaddress.IPv4Address(self.last))
        gateway = int(ipaddress.IPv4Address(self.gateway)) if self.gateway else -1
        return last - first + 1 - (1 if first <= gateway <= last else 0)
