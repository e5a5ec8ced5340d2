"""The one "host:port" / "[ipv6]:port" / "unix:<path>" parser and the call sites that use it."""
import pytest

from mindspore_federated.address import Address, parse_address, split_host_port


@pytest.mark.parametrize("text, host, port", [
    ("127.0.0.1:6379", "127.0.0.1", 6379),
    ("localhost:1", "localhost", 1),
    ("redis.example:65535", "redis.example", 65535),
    ("[::1]:6379", "::1", 6379),
    ("[fe80::1%eth0]:80", "fe80::1%eth0", 80),
    ("::1:6379", "::1", 6379),  # unbracketed IPv6: the port is after the last ':'
])
def test_host_and_port(text, host, port):
    assert parse_address(text) == Address(host, port)
    assert split_host_port(text) == (host, port)


@pytest.mark.parametrize("text", ["127.0.0.1", "127.0.0.1:", ":6379", "127.0.0.1:65536", "h:0", "h:-1",
                                  "127.0.0.1:port", "h:+80", "h:1_0", "h: 80", "[::1]", "[::1]6379",
                                  "[nothost]:80", "a b:80", "zz::1:80", "unix:/tmp/r.sock", ""])
def test_invalid_addresses(text):
    with pytest.raises(ValueError):
        parse_address(text)


def test_unix_sockets_only_when_allowed():
    assert parse_address("unix:/tmp/r.sock", allow_unix=True) == Address(unix_path="/tmp/r.sock")
    assert parse_address("unix:/tmp/r.sock", allow_unix=True).is_unix
    with pytest.raises(ValueError, match="unix:<path>"):
        parse_address("unix:", allow_unix=True)


def test_ipv4_only():
    assert parse_address("10.0.0.1:80", ipv4_only=True) == Address("10.0.0.1", 80)
    for text in ("localhost:80", "[::1]:80", "10.0.0.256:80", "010.0.0.1:80"):
        with pytest.raises(ValueError):
            parse_address(text, ipv4_only=True)


def test_str_round_trips():
    for text in ("127.0.0.1:6379", "[::1]:6379", "unix:/tmp/r.sock"):
        assert str(parse_address(text, allow_unix=True)) == text
    with pytest.raises(ValueError, match="must be a str"):
        parse_address(6379)


def test_config_and_server_job_use_the_parser():
    from mindspore_federated.server.job import check_address
    assert check_address("127.0.0.1:6666", "http_server_address") == ("127.0.0.1", 6666)
    for bad in ("localhost:6666", "127.0.0.1:0", "127.0.0.1", "127.0.0.1:+80"):
        with pytest.raises(RuntimeError, match="Invalid http_server_address"):
            check_address(bad, "http_server_address")
    with pytest.raises(RuntimeError, match="Parameter 'http_server_address' should be str, but got int"):
        check_address(6666, "http_server_address")
