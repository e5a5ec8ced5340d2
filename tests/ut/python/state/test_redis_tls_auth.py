"""Both Redis client styles against a real TLS-only redis-server with requirepass and an ACL user: TLS, AUTH,
ACL user, database, re-AUTH after a reconnect, and never a plain-TCP fallback."""
import asyncio

import pytest
from redis.exceptions import AuthenticationError, RedisError

from mindspore_federated.errors import ConfigError
from mindspore_federated.state import pipelined
from mindspore_federated.state.clients import (
    PASSWORD_ENV,
    USERNAME_ENV,
    RedisSettings,
    make_client,
    make_pipelined,
    make_sync_client,
    startup_failure,
)
from tests.utils.redis_server import RedisServer, RedisTls

DEFAULT_PW, ALICE_PW = "default-secret-1", "alice-secret-2"
ACL = ("--requirepass", DEFAULT_PW, "--user", "alice", "on", f">{ALICE_PW}", "~*", "&*", "+@all")
needs_hiredis = pytest.mark.skipif(not pipelined.HAVE_HIREDIS, reason="the pipelined client needs hiredis")


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    d = tmp_path_factory.mktemp("redis_tls")
    material = RedisTls(d / "pki", client_certs=True)
    server = RedisServer(d / "data", extra_args=ACL, tls=material).start()
    yield server, material
    server.stop()


def settings(tls_redis, **kw):
    server, material = tls_redis
    base = dict(tls=True, ca_file=material.ca_file, cert_file=material.client_cert,
                key_file=material.client_key, password=DEFAULT_PW)
    base.update(kw)
    return RedisSettings(server.address, **base)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30.0))


async def _use_client(s):
    client = make_client(s)
    try:
        await client.set("k", b"v")
        return await client.get("k")
    finally:
        await client.aclose()


async def _use_pipelined(s):
    fast = make_pipelined(s)
    try:
        await fast.execute("SET", "k", b"v")
        return await fast.execute("GET", "k")
    finally:
        await fast.aclose()


USERS = [("default user", {}), ("ACL user", {"username": "alice", "password": ALICE_PW})]


@pytest.mark.parametrize("who,auth", USERS)
def test_redis_py_client_over_tls_with_auth(tls_redis, who, auth):
    assert run(_use_client(settings(tls_redis, **auth))) == b"v"


@needs_hiredis
@pytest.mark.parametrize("who,auth", USERS)
def test_pipelined_client_over_tls_with_auth(tls_redis, who, auth):
    assert run(_use_pipelined(settings(tls_redis, **auth))) == b"v"


@needs_hiredis
def test_both_clients_select_the_configured_database(tls_redis):
    s = settings(tls_redis, db=5)

    async def scenario():
        fast = make_pipelined(s)
        client = make_client(s)
        try:
            await fast.execute("SET", "db-key", b"from the pipelined client")
            return await client.get("db-key")
        finally:
            await fast.aclose()
            await client.aclose()
    assert run(scenario()) == b"from the pipelined client"
    sync = make_sync_client(settings(tls_redis, db=0), socket_timeout=5)
    try:
        assert sync.get("db-key") is None  # it went to database 5, not 0
    finally:
        sync.close()


@pytest.mark.parametrize("bad", [{"password": "wrong"}, {"username": "alice", "password": "wrong"},
                                 {"username": "mallory", "password": ALICE_PW}, {"password": None}])
def test_wrong_credentials_are_an_auth_failure_in_both_clients(tls_redis, bad):
    s = settings(tls_redis, **bad)

    async def attempt(use):
        with pytest.raises(RedisError) as info:
            await use(s)
        return info.value
    errors = [run(attempt(_use_client))]
    if pipelined.HAVE_HIREDIS:
        errors.append(run(attempt(_use_pipelined)))
    for exc in errors:
        fatal, text = startup_failure(s, exc)
        assert fatal and "Redis auth" in text, (type(exc), exc)
        assert ALICE_PW not in text and DEFAULT_PW not in text


@needs_hiredis
def test_pipelined_client_authenticates_again_after_a_reconnect(tls_redis):
    s = settings(tls_redis, username="alice", password=ALICE_PW)

    async def scenario():
        fast = make_pipelined(s)
        try:
            own_id = await fast.execute("CLIENT", "ID")
            admin = make_client(settings(tls_redis))
            await admin.execute_command("CLIENT", "KILL", "ID", own_id)
            await admin.aclose()
            for _ in range(100):  # the first call after the kill may see the lost connection
                try:
                    return await fast.execute("ACL", "WHOAMI")
                except RedisError:
                    await asyncio.sleep(0.05)
            raise AssertionError("the pipelined client did not reconnect")
        finally:
            await fast.aclose()
    assert run(scenario()) == b"alice"


def test_tls_client_against_plain_redis_never_talks_plain_tcp(redis_server):
    """A TLS-asking client on a plain-TCP Redis fails (both styles); a key set through it never lands."""
    s = RedisSettings(redis_server.address, tls=True)

    async def scenario(use):
        with pytest.raises((RedisError, OSError)):
            await asyncio.wait_for(use(s), 20)
    run(scenario(_use_client))
    if pipelined.HAVE_HIREDIS:
        run(scenario(_use_pipelined))
    fatal, text = startup_failure(s, RedisError("x"))
    assert not fatal and "TLS to Redis" in text


def test_plain_client_against_the_tls_port_fails(tls_redis):
    s = settings(tls_redis, tls=False)

    async def scenario():
        with pytest.raises((RedisError, OSError)):
            await asyncio.wait_for(_use_client(s), 20)
    run(scenario())


def test_unreadable_tls_files_name_the_key(tls_redis, tmp_path):
    with pytest.raises(ConfigError, match="distributed_cache.cacert_filename"):
        make_client(settings(tls_redis, ca_file=str(tmp_path / "missing.pem")))
    with pytest.raises(ConfigError, match="cert_filename and distributed_cache.private_key_filename"):
        make_client(settings(tls_redis, key_file=None))


def test_untrusted_server_certificate_is_refused(tls_redis, tmp_path):
    other = RedisTls(tmp_path / "other")  # a CA that did not sign the Redis certificate
    s = settings(tls_redis, ca_file=other.ca_file)

    async def scenario():
        with pytest.raises((RedisError, OSError)):
            await _use_client(s)
    run(scenario())


def test_sync_client_for_tools(tls_redis):
    client = make_sync_client(settings(tls_redis, username="alice", password=ALICE_PW), socket_timeout=5,
                              decode_responses=True)
    try:
        assert client.acl_whoami() == "alice"
    finally:
        client.close()
    with pytest.raises(AuthenticationError):
        make_sync_client(settings(tls_redis, password="nope"), socket_timeout=5).ping()


def test_password_from_the_environment_and_never_in_repr():
    class Cfg(dict):
        redis_address = "127.0.0.1:1"
    env = {PASSWORD_ENV: "env-secret", USERNAME_ENV: "bob"}
    s = RedisSettings.from_config(Cfg(), environ=env)
    assert (s.username, s.password) == ("bob", "env-secret")
    assert "env-secret" not in repr(s)
    yaml_wins = RedisSettings.from_config(Cfg({"distributed_cache.password": "yaml-secret"}), environ=env)
    assert yaml_wins.password == "yaml-secret"
    assert RedisSettings.from_address("127.0.0.1:1", environ=env).password == "env-secret"


def test_redis_tls_settings_need_an_address_with_a_port():
    for factory in (make_client, make_pipelined, make_sync_client):
        with pytest.raises(ConfigError, match="TLS"):
            factory(RedisSettings("unix:/tmp/r.sock", tls=True))
