"""The Redis client factory on a real redis-server: settings from config; AUTH, database, TLS honoured."""
import asyncio

import pytest
import redis
from redis.exceptions import AuthenticationError, RedisError

from mindspore_federated.config import load_config_dict
from mindspore_federated.state import pipelined
from mindspore_federated.state.clients import (
    RedisSettings,
    make_client,
    make_pipelined,
    settings_of,
)


def config(address, enable_ssl=False, **cache):
    ssl = {"server_cert_path": "s.p12", "client_cert_path": "c.p12", "ca_cert_path": "ca.crt",
           "cipher_list": "ECDHE-RSA-AES128-GCM-SHA256"}
    return load_config_dict({
        "fl_name": "f", "fl_iteration_num": 1, "server_mode": "FEDERATED_LEARNING", "enable_ssl": enable_ssl,
        "distributed_cache": {"type": "redis", "address": address, **cache},
        **({"ssl": ssl} if enable_ssl else {}),
        "round": {"start_fl_job_threshold": 1, "start_fl_job_time_window": 3000, "update_model_ratio": 1.0,
                  "update_model_time_window": 3000, "global_iteration_time_window": 6000},
        "summary": {"metrics_file": "metrics.json", "failure_event_file": "event.txt"}}, role="scheduler")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20.0))


def test_settings_from_config():
    plain = RedisSettings.from_config(config("127.0.0.1:6379"))
    assert plain == RedisSettings("127.0.0.1:6379") == settings_of("127.0.0.1:6379")
    tls = settings_of(config("127.0.0.1:6379", True, cacert_filename="ca.pem", cert_filename="c.pem",
                             private_key_filename="k.pem", server_name="redis.local"))
    assert (tls.tls, tls.ca_file, tls.cert_file, tls.key_file, tls.server_name) == (
        True, "ca.pem", "c.pem", "k.pem", "redis.local")


def test_password_and_database_are_used(fresh_redis):
    admin = redis.Redis(port=fresh_redis.port)
    admin.config_set("requirepass", "secret-pw")
    admin.close()

    async def scenario():
        anonymous = make_client(fresh_redis.address)
        with pytest.raises(AuthenticationError):
            await anonymous.ping()
        await anonymous.aclose()
        client = make_client(RedisSettings(fresh_redis.address, password="secret-pw", db=3))
        await client.set("k", "in db 3")
        await client.aclose()
    run(scenario())
    check = redis.Redis(port=fresh_redis.port, password="secret-pw", db=3)
    assert check.get("k") == b"in db 3"
    check.close()


def test_tls_is_never_plain_tcp(redis_server):
    """TLS settings against a plain-TCP Redis fail to connect; they never talk plain TCP (both client styles:
    tests/ut/python/state/test_redis_tls_auth.py)."""
    settings = RedisSettings(redis_server.address, tls=True)

    async def scenario():
        client = make_client(settings, timeout=1.0)
        with pytest.raises((RedisError, OSError)):
            await client.ping()
        await client.aclose()
    run(scenario())


@pytest.mark.skipif(not pipelined.HAVE_HIREDIS, reason="the pipelined client needs hiredis")
def test_pipelined_client_from_settings(redis_server):
    async def scenario():
        fast = make_pipelined(config(redis_server.address))
        try:
            assert await fast.execute("PING") in (b"PONG", "PONG")
        finally:
            await fast.aclose()
    run(scenario())


def test_redis_tls_keys_without_enable_ssl_are_named_in_a_warning():
    cfg = config("127.0.0.1:6379", cacert_filename="ca.pem", server_name="redis.local")
    assert not RedisSettings.from_config(cfg).tls
    assert any("distributed_cache.cacert_filename, distributed_cache.server_name are set but enable_ssl is false"
               in w for w in cfg.warnings)
    assert config("127.0.0.1:6379").warnings == ()


# ---- Redis Sentinel and Cluster (issue 17 item 4): what the factory refuses, at start-up -----------------

def test_the_pipelined_client_refuses_a_cluster_by_name():
    if not pipelined.HAVE_HIREDIS:
        pytest.skip("no hiredis: there is no pipelined client")
    from mindspore_federated.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot serve the Redis Cluster cluster://127.0.0.1:7000"):
        make_pipelined(config("cluster://127.0.0.1:7000"))


@pytest.mark.parametrize("address", ["sentinel://127.0.0.1:26379/m", "cluster://127.0.0.1:7000"])
def test_tls_to_sentinel_or_cluster_is_refused_not_ignored(address):
    from mindspore_federated.errors import ConfigError

    settings = RedisSettings(address, tls=True)
    with pytest.raises(ConfigError, match="TLS to a Redis (sentinel|cluster) is not built"):
        make_client(settings)


def test_a_cluster_has_only_database_0():
    from mindspore_federated.errors import ConfigError

    with pytest.raises(ConfigError, match="distributed_cache.db is 2, but a Redis Cluster has only database 0"):
        make_client(config("cluster://127.0.0.1:7000", db=2))


def test_settings_name_the_topology():
    assert RedisSettings("127.0.0.1:6379").topology.kind == "single"
    sentinel = settings_of(config("sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster")).topology
    assert (sentinel.kind, sentinel.nodes, sentinel.master_name) == (
        "sentinel", (("127.0.0.1", 26379), ("127.0.0.1", 26380)), "mymaster")
    assert RedisSettings("cluster://127.0.0.1:7000").topology.nodes == (("127.0.0.1", 7000),)
