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


SENTINEL_FORM = "'sentinel://ip:port[,ip:port...]/<master_name>'"
CLUSTER_FORM = "'cluster://ip:port[,ip:port...]'"


def _nodes(text, whole, form):
    try:
        return tuple(split_host_port(p.strip()) for p in text.split(","))
    except ValueError:
        raise ValueError(f"expected {form}, but got '{whole}'") from None


def parse_topology(address) -> Topology:
    """The Topology of a distributed_cache.address; ValueError naming the accepted forms otherwise."""
    if not isinstance(address, str):
        raise ValueError(f"an address must be a str, but got {type(address).__name__}")
    if address.startswith(SENTINEL_PREFIX):
        rest = address[len(SENTINEL_PREFIX):]
        nodes, slash, master = rest.rpartition("/")
        if not slash or not master or not nodes:
            raise ValueError(f"expected {SENTINEL_FORM} (a Sentinel address names its master), but got '{address}'")
        return Topology("sentinel", address, _nodes(nodes, address, SENTINEL_FORM), master)
    if address.startswith(CLUSTER_PREFIX):
        return Topology("cluster", address, _nodes(address[len(CLUSTER_PREFIX):], address, CLUSTER_FORM))
    if address.startswith("unix:"):
        if len(address) == len("unix:"):
            raise ValueError(f"expected 'unix:<path>', but got '{address}'")
        return Topology("single", address)
    try:
        split_host_port(address)
    except ValueError:
        raise ValueError(f"expected {ADDRESS_FORMS}, but got '{address}'") from None
    return Topology("single", address)
