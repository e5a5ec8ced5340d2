"""The Redis deployment named by distributed_cache.address: one server, a Sentinel group, or a Cluster."""
from dataclasses import dataclass
from typing import Optional

from mindspore_federated.address import split_host_port

SENTINEL_PREFIX = "sentinel://"
CLUSTER_PREFIX = "cluster://"
ADDRESS_FORMS = ("'ip:port', 'unix:<path>', 'sentinel://ip:port[,ip:port...]/<master_name>' or "
                 "'cluster://ip:port[,ip:port...]'")


@dataclass(frozen=True)
class Topology:
    """kind 'single' (address), 'sentinel' (nodes = the sentinels, master_name) or 'cluster' (nodes = seeds)."""

    kind: str
    address: str = ""
    nodes: tuple[tuple[str, int], ...] = ()
    master_name: Optional[str] = None


def _nodes(text, whole):
    parts = [p.strip() for p in text.split(",")]
    if not parts or any(not p for p in parts):
        raise ValueError(f"invalid address {whole!r}: expected {ADDRESS_FORMS}")
    try:
        return tuple(split_host_port(p) for p in parts)
    except ValueError as exc:
        raise ValueError(f"invalid address {whole!r}: {exc}") from None


def parse_topology(address) -> Topology:
    """The Topology of a distributed_cache.address; ValueError naming the accepted forms otherwise."""
    if not isinstance(address, str):
        raise ValueError(f"an address must be a str, but got {type(address).__name__}")
    if address.startswith(SENTINEL_PREFIX):
        rest = address[len(SENTINEL_PREFIX):]
        nodes, slash, master = rest.rpartition("/")
        if not slash or not master or not nodes:
            raise ValueError(f"invalid address {address!r}: a Sentinel address names its master: "
                             "'sentinel://ip:port[,ip:port...]/<master_name>'")
        return Topology("sentinel", address, _nodes(nodes, address), master)
    if address.startswith(CLUSTER_PREFIX):
        return Topology("cluster", address, _nodes(address[len(CLUSTER_PREFIX):], address))
    if address.startswith("unix:"):
        if len(address) == len("unix:"):
            raise ValueError(f"invalid address {address!r}: expected 'unix:<path>'")
        return Topology("single", address)
    try:
        split_host_port(address)
    except ValueError:
        raise ValueError(f"invalid address {address!r}: expected {ADDRESS_FORMS}") from None
    return Topology("single", address)
