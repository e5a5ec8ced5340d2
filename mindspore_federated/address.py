"""Network addresses: the one parser of "host:port", "[ipv6]:port" and Redis "unix:<path>" strings."""
import ipaddress
from dataclasses import dataclass

__all__ = ["Address", "parse_address", "split_host_port", "UNIX_PREFIX"]

UNIX_PREFIX = "unix:"


@dataclass(frozen=True)
class Address:
    """A parsed address: `host` and `port`, or `unix_path` for a Unix socket (then host is "" and port 0)."""

    host: str = ""
    port: int = 0
    unix_path: str = ""

    @property
    def is_unix(self):
        return bool(self.unix_path)

    def __str__(self):
        if self.unix_path:
            return UNIX_PREFIX + self.unix_path
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _port(text, original):
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise ValueError(f"invalid port in {original!r}: expected 1..65535")
    return int(text)


def _is_ipv6(text):
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _split(text):
    """(host, port text) of "host:port" or "[ipv6]:port"."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep or not _is_ipv6(host):
            raise ValueError(f"invalid address {text!r}: expected '[ipv6]:port'")
        return host, port
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"invalid address {text!r}: expected 'host:port'")
    if ":" in host and not _is_ipv6(host):  # an unbracketed IPv6 address is read up to the last ':'
        raise ValueError(f"invalid address {text!r}: expected '[ipv6]:port'")
    if any(c.isspace() for c in host) or "[" in host or "]" in host:
        raise ValueError(f"invalid host in {text!r}")
    return host, port


def parse_address(text, *, allow_unix=False, ipv4_only=False):
    """Parses "host:port", "[ipv6]:port" (port 1..65535) and, with `allow_unix`, "unix:<path>".

    `ipv4_only` requires a dotted IPv4 host. Raises ValueError naming what is wrong; never returns a
    half-parsed address.
    """
    if not isinstance(text, str):
        raise ValueError(f"an address must be a str, but got {type(text).__name__}")
    if allow_unix and text.startswith(UNIX_PREFIX):
        path = text[len(UNIX_PREFIX):]
        if not path:
            raise ValueError(f"invalid address {text!r}: expected 'unix:<path>'")
        return Address(unix_path=path)
    host, port = _split(text)
    if ipv4_only:
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"invalid address {text!r}: expected 'ipv4:port'") from None
    return Address(host, _port(port, text))


def split_host_port(text):
    """(host, port) of "host:port" or "[ipv6]:port" (brackets removed); ValueError otherwise."""
    address = parse_address(text)
    return address.host, address.port
