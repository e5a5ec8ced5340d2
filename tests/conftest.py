"""Shared fixtures: a real redis-server per session, a fresh fl_name per test, a process group."""
import itertools
import os
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.utils.procs import ProcessGroup  # noqa: E402
from tests.utils.redis_server import RedisServer  # noqa: E402

_counter = itertools.count()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server on a free loopback port for the whole session, stopped by PID."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def fresh_redis(tmp_path):
    """A private redis-server for tests that kill or restart it."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def fl_name():
    """A unique fl_name: every Redis key of a cluster is namespaced by it, so tests never collide."""
    return f"t{next(_counter)}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def procs(tmp_path, request):
    """Starts role processes; at the end stops them and fails the test if one ignored SIGTERM or left
    children behind."""
    group = ProcessGroup(tmp_path / "logs")
    yield group
    problems = group.close()
    if problems and not request.node.get_closest_marker("allow_leftovers"):
        pytest.fail(f"processes did not stop cleanly: {problems}")
