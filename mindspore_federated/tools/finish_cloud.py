"""Stops a cluster's processes by the PIDs they registered in Redis (SIGTERM, deadline, SIGKILL)."""
import argparse
import json
import os
import signal
import sys
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from mindspore_federated.address import parse_address
from mindspore_federated.state.clients import RedisSettings, make_sync_client
from mindspore_federated.state.keys import Keys
from mindspore_federated.tools import proc_registry
from mindspore_federated.tools.proc_registry import process_identity  # noqa: F401 - re-exported helper

DEFAULT_REDIS_PORT = 8113
# Deletes a registration only if it still holds the value we acted on (a restarted process may re-register).
_CAS_HDEL = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""


class Target:
    """One verified registered process; signals go through a pidfd when the kernel offers one."""

    def __init__(self, key, node_id, raw, entry):
        self.key, self.node_id, self.raw, self.entry = key, node_id, raw, entry
        self.pid = int(entry["pid"])
        self.start_time = int(entry["start_time"])
        self.pidfd = self._open_pidfd()

    def _open_pidfd(self):
        try:
            fd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            return None
        if proc_registry.start_time(self.pid) != self.start_time:  # reused between check and open
            os.close(fd)
            raise ProcessLookupError(self.pid)
        return fd

    def gone(self) -> bool:
        return not proc_registry.is_running(self.pid) or proc_registry.start_time(self.pid) != self.start_time

    def send(self, sig):
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, sig)
            elif not self.gone():
                os.kill(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self):
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def registry_keys(client, fl_name=None) -> list:
    """The `processes` hash of `fl_name`, or of every cluster in this Redis (SCAN)."""
    if fl_name:
        return [Keys(fl_name).processes]
    return sorted(set(client.scan_iter(match=Keys("*").processes, count=500)))


def read_entries(client, keys) -> list:
    """(key, node_id, raw JSON, dict) of every registration under `keys`."""
    entries = []
    for key in keys:
        for node_id, raw in sorted(client.hgetall(key).items()):
            try:
                entry = json.loads(raw)
            except ValueError:
                entry = None
            entries.append((key, node_id, raw, entry if isinstance(entry, dict) else {}))
    return entries


def _port_of(entry) -> str:
    return str(entry.get("address", "")).rpartition(":")[2]


def scheduler_port_of(entry) -> str:
    """The scheduler port a SCHEDULER registration answers to: the `scheduler_port` it was started with
    (seed 001 `--scheduler_port`), else, for registrations without one, the port of its manage address."""
    port = entry.get("scheduler_port")
    return str(port) if port not in (None, "") else _port_of(entry)


def filter_by_scheduler(entries, scheduler_port) -> list:
    """Keeps the clusters (registry keys) with a scheduler registered under `scheduler_port`."""
    keys = {key for key, _, _, e in entries
            if e.get("role") == "SCHEDULER" and scheduler_port_of(e) == str(scheduler_port)}
    return [item for item in entries if item[0] in keys]


def select_targets(client, entries, out=sys.stderr) -> list:
    """Verified live local processes; stale entries are removed, others reported and left alone."""
    cas_hdel = client.register_script(_CAS_HDEL)
    targets = []
    for key, node_id, raw, entry in entries:
        verdict = proc_registry.classify(entry)
        if verdict == proc_registry.ALIVE:
            try:
                targets.append(Target(key, node_id, raw, entry))
                continue
            except ProcessLookupError:
                verdict = proc_registry.REUSED
        if verdict in (proc_registry.GONE, proc_registry.REUSED):
            cas_hdel(keys=[key], args=[node_id, raw])
            print(f"removed stale entry {node_id} (pid {entry.get('pid')} {verdict})", file=out)
        elif verdict == proc_registry.FOREIGN:
            print(f"skipped {node_id}: registered on host {entry.get('host')}", file=out)
        else:
            print(f"skipped {node_id}: registration lacks pid/start_time, cannot verify it", file=out)
    return targets


def wait_gone(targets, timeout) -> list:
    """Waits until every target exited or `timeout` passed; returns the survivors."""
    deadline = time.monotonic() + timeout
    alive = list(targets)
    while alive:
        alive = [t for t in alive if not t.gone()]
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return alive


def stop(targets, timeout, out=sys.stdout) -> list:
    """SIGTERM all, wait `timeout`, SIGKILL the rest; prints `killed <pid>`; returns the survivors."""
    for target in targets:
        target.send(signal.SIGTERM)
    survivors = wait_gone(targets, timeout)
    for target in survivors:
        target.send(signal.SIGKILL)
    survivors = wait_gone(survivors, 5.0)
    for target in targets:
        if target not in survivors:
            print(f"killed {target.pid}", file=out, flush=True)
        target.close()
    return survivors


REDIS_HELP = f"""Which Redis holds the registry, first match wins: --redis_address; --redis_port (127.0.0.1);
distributed_cache.address of --yaml_config (the example's finish_cloud.py defaults it to yamls/lenet.yaml, the
file run_sched.py/run_server.py use by default); else 127.0.0.1:{DEFAULT_REDIS_PORT}."""


def parse_args(argv=None, default_yaml=None):
    parser = argparse.ArgumentParser(
        prog="finish_cloud.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Stop the processes of a cluster (scheduler, servers) found through what they registered "
                    "in Redis: SIGTERM, wait, SIGKILL as a last resort; prints `killed <pid>` per process.",
        epilog=REDIS_HELP)
    parser.add_argument("--redis_port", type=int, default=None, help="port of Redis on 127.0.0.1")
    parser.add_argument("--redis_address", default=None, help="host:port of Redis (overrides --redis_port)")
    parser.add_argument("--yaml_config", default=default_yaml,
                        help="read the Redis address from this YAML's distributed_cache.address"
                             + (f" (default {default_yaml})" if default_yaml else ""))
    parser.add_argument("--fl_name", default=None, help="only this cluster (default: every cluster in Redis)")
    parser.add_argument("--scheduler_port", type=int, default=None,
                        help="only the cluster(s) whose scheduler registered this scheduler port: the "
                             "--scheduler_port it was started with (seed 001), else its manage port")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    return parser.parse_args(argv)


def redis_settings(args) -> RedisSettings:
    """The Redis to use (see REDIS_HELP): the YAML's whole distributed_cache section (AUTH, TLS) when the
    address comes from it, else the address with AUTH from MSF_REDIS_USERNAME / MSF_REDIS_PASSWORD."""
    address = args.redis_address or (None if args.redis_port is None else f"127.0.0.1:{args.redis_port}")
    if address is None and args.yaml_config:
        from mindspore_federated.config import load_config

        return RedisSettings.from_config(load_config(args.yaml_config, role="scheduler"))
    return RedisSettings.from_address(address or f"127.0.0.1:{DEFAULT_REDIS_PORT}")


def main(argv=None, default_yaml=None) -> int:
    """0 when every verified process is gone, 1 if one survived SIGKILL, 2 if Redis is unreachable,
    3 if the YAML given for the Redis address is unusable."""
    args = parse_args(argv, default_yaml)
    try:
        settings = redis_settings(args)
        address = settings.address if settings.topology.kind != "single" else parse_address(settings.address,
                                                                                              allow_unix=True)
        client = make_sync_client(settings, socket_timeout=5, socket_connect_timeout=3, decode_responses=True,
                                  retry=Retry(NoBackoff(), 1))
    except (RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    try:
        entries = read_entries(client, registry_keys(client, args.fl_name))
        if args.scheduler_port is not None:
            entries = filter_by_scheduler(entries, args.scheduler_port)
            if not entries:
                print(f"no scheduler registered with scheduler port {args.scheduler_port} in Redis {address}",
                      file=sys.stderr)
        targets = select_targets(client, entries)
        survivors = stop(targets, args.timeout)
        cas_hdel = client.register_script(_CAS_HDEL)
        for target in targets:
            if target not in survivors:
                cas_hdel(keys=[target.key], args=[target.node_id, target.raw])
    except redis.RedisError as exc:
        print(f"error: cannot use Redis at {address}: {exc}", file=sys.stderr)
        return 2
    finally:
        client.close()
    for target in survivors:
        print(f"error: pid {target.pid} ({target.node_id}) did not exit", file=sys.stderr)
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
