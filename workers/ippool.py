"""Per-zone IP pools for the machines kobot creates on vSphere/OpenStack, held in Redis.

A pool is a CIDR and an address range inside it. Addresses are reserved per cluster and node name,
all of a request or none (one Lua script), so two clusters planned at once never share an address
and a retried plan gets the same addresses back.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any, cast

from redis import Redis

from kobot import keys
from kobot.errors import ConflictError, NotFoundError
from kobot.settings_ip_pools import IpPoolConfig

POOL_CONFIGS = f"{keys.PREFIX}:ippool:configs"
"""Hash zone -> pool config JSON."""


USED_PREFIX = f"{keys.PREFIX}:ippool:zone:"
"""Per-zone hash address (as an integer) -> "cluster/node"; the key is USED_PREFIX + zone + ":used"."""


def _used_key(zone: str) -> str:
    return f"{USED_PREFIX}{zone}:used"


def _cluster_key(cluster: str) -> str:
    """Hash node -> "zone|address integer": what one cluster holds, for release and idempotent re-plans."""
    return f"{keys.PREFIX}:ippool:cluster:{cluster}"


# KEYS: [cluster key, used key of every configured zone...]
# ARGV: [cluster, commit (0|1), used-key prefix, n, then per node: node, zone, first, last, gateway (0: none)]
# All or nothing: every node is resolved before anything is written. A node already holding an address
# in the same zone keeps it; one that moved zones gives its old address back.
_RESERVE = """
local cluster_key = KEYS[1]
local cluster, commit, prefix, n = ARGV[1], ARGV[2] == '1', ARGV[3], tonumber(ARGV[4])
local function used_key(zone) return prefix .. zone .. ':used' end
local function field(a) return string.format('%d', a) end
local picked, cursor, chosen, moved = {}, {}, {}, {}
for i = 0, n - 1 do
  local base = 5 + i * 5
  local node, zone = ARGV[base], ARGV[base + 1]
  local first, last, gw = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
  local owner = cluster .. '/' .. node
  local addr = nil
  local held = redis.call('HGET', cluster_key, node)
  if held then
    local sep = string.find(held, '|', 1, true)
    local held_zone, held_addr = string.sub(held, 1, sep - 1), tonumber(string.sub(held, sep + 1))
    if held_zone == zone and redis.call('HGET', used_key(zone), field(held_addr)) == owner then
      addr = held_addr
    else
      table.insert(moved, {used_key(held_zone), field(held_addr), owner})
    end
  end
  if not addr then
    local a = cursor[zone] or first
    while a <= last and (a == gw or picked[zone .. ':' .. field(a)]
                         or redis.call('HEXISTS', used_key(zone), field(a)) == 1) do
      a = a + 1
    end
    if a > last then return {'full', zone} end
    cursor[zone] = a + 1
    addr = a
  end
  picked[zone .. ':' .. field(addr)] = true
  table.insert(chosen, {node, zone, field(addr), owner})
end
local out = {}
for _, c in ipairs(chosen) do
  table.insert(out, c[1])
  table.insert(out, c[3])
end
if commit then
  for _, m in ipairs(moved) do
    if redis.call('HGET', m[1], m[2]) == m[3] then redis.call('HDEL', m[1], m[2]) end
  end
  for _, c in ipairs(chosen) do
    redis.call('HSET', used_key(c[2]), c[3], c[4])
    redis.call('HSET', cluster_key, c[1], c[2] .. '|' .. c[3])
  end
end
return {'ok', out}
"""


class IpPools:
    """The pools kobot hands addresses out of; one instance per Redis connection."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._reserve = redis.register_script(_RESERVE)

    def configure(self, *, pool: IpPoolConfig) -> None:
        """Add or replace a zone's pool. Addresses already handed out stay reserved."""
        self._redis.hset(POOL_CONFIGS, pool.zone, pool.model_dump_json())

    def get(self, zone: str) -> IpPoolConfig | None:
        raw = cast(bytes | None, self._redis.hget(POOL_CONFIGS, zone))
        return None if raw is None else IpPoolConfig.model_validate_json(raw)

    def zones(self) -> list[str]:
        return sorted(self._hash(POOL_CONFIGS))

    def free(self, zone: str) -> int:
        pool = self._require(zone)
        return pool.size() - len(self._hash(_used_key(zone)))

    def reserve(self, *, cluster: str, nodes: Mapping[str, str]) -> dict[str, str]:
        """Reserve one address per node (node name -> zone); the same node keeps its address on a retry."""
        return self._run(cluster=cluster, nodes=nodes, commit=True)

    def preview(self, *, cluster: str, nodes: Mapping[str, str]) -> dict[str, str]:
        """The addresses `reserve` would hand out now, reserving nothing (for `plan cluster`)."""
        return self._run(cluster=cluster, nodes=nodes, commit=False)

    def reserved(self, *, cluster: str) -> dict[str, str]:
        """node -> address for everything the cluster holds."""
        held = self._hash(_cluster_key(cluster))
        return {node: _address(value.split("|", 1)[1]) for node, value in held.items()}

    def release(self, *, cluster: str, nodes: Iterable[str] | None = None) -> list[str]:
        """Give back the addresses of `nodes` (every node of the cluster when None); returns the nodes."""
        cluster_key = _cluster_key(cluster)
        held = self._hash(cluster_key)
        wanted = list(held) if nodes is None else [node for node in nodes if node in held]
        pipe = self._redis.pipeline(transaction=True)
        for node in wanted:
            zone, addr = held[node].split("|", 1)
            pipe.hdel(_used_key(zone), addr)
            pipe.hdel(cluster_key, node)
        pipe.execute()
        return wanted

    def _run(self, *, cluster: str, nodes: Mapping[str, str], commit: bool) -> dict[str, str]:
        if not nodes:
            return {}
        argv: list[Any] = [cluster, "1" if commit else "0", USED_PREFIX, len(nodes)]
        for node, zone in nodes.items():
            pool = self._require(zone)
            gateway = int(ipaddress.IPv4Address(pool.gateway)) if pool.gateway else 0
            first, last = int(ipaddress.IPv4Address(pool.first)), int(ipaddress.IPv4Address(pool.last))
            argv += [node, zone, first, last, gateway]
        used_keys = [_used_key(zone) for zone in self.zones()]
        result = self._reserve(keys=[_cluster_key(cluster), *used_keys], args=argv)
        if _text(result[0]) == "full":
            zone = _text(result[1])
            pool = self._require(zone)
            wanted = sum(1 for z in nodes.values() if z == zone)
            raise ConflictError(
                f"IP pool of zone {zone} is full: {wanted} addresses needed, {self.free(zone)} free "
                f"in {pool.first}-{pool.last}"
            )
        flat = [_text(item) for item in result[1]]
        return {flat[i]: _address(flat[i + 1]) for i in range(0, len(flat), 2)}

    def _hash(self, key: str) -> dict[str, str]:
        raw = cast(dict[bytes, bytes], self._redis.hgetall(key))
        return {_text(name): _text(value) for name, value in raw.items()}

    def _require(self, zone: str) -> IpPoolConfig:
        pool = self.get(zone)
        if pool is None:
            known = ", ".join(self.zones()) or "none configured"
            raise NotFoundError(f"no IP pool for zone {zone} (pools: {known})")
        return pool


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _address(integer: str) -> str:
    return str(ipaddress.IPv4Address(int(integer)))


def pool_summary(pools: IpPools) -> list[str]:
    """One line per zone for chat: range and free count."""
    lines = []
    for zone in pools.zones():
        pool = pools.get(zone)
        if pool is not None:
            lines.append(f"{zone}: {pool.first}-{pool.last} ({pools.free(zone)} free)")
    return lines
