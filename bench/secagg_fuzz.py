"""Mutation run against the eight cipher endpoints of one live PW_ENCRYPT server (tests/utils/cipher_fuzz.py;
the system test sends 500 per endpoint, this sends --count per endpoint, default 10,000): prints how many
bodies went out, how many replies were not an error reply, the server's CPU and whether it stayed healthy.

    .venv/bin/python bench/secagg_fuzz.py --count 10000
"""
import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import urllib.request

import yaml

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, os.path.dirname(BENCH_DIR))

from run_all import RedisProc, ServerProc, cpu_seconds, write_yaml  # noqa: E402

from tests.utils.cipher_fuzz import fuzz  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=10_000, help="mutated bodies per endpoint")
    p.add_argument("--seed", type=int, default=1)
    opts = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="secagg_fuzz_") as workdir:
        redis = RedisProc(workdir).start()
        server = None
        try:
            path = write_yaml(workdir, redis.address, 2, 1)
            with open(path, encoding="utf-8") as f:
                cfg = yaml.safe_load(f)
            cfg["encrypt"] = {"encrypt_type": "PW_ENCRYPT", "pw_encrypt": {
                "share_secrets_ratio": 1.0, "cipher_time_window": 600_000, "reconstruct_secrets_threshold": 1}}
            with open(path, "w", encoding="utf-8") as f:
                yaml.safe_dump(cfg, f)
            server = ServerProc(0, workdir, path, "lenet").start()
            cpu0, t0 = cpu_seconds(server.proc.pid), time.perf_counter()
            sent, problems = asyncio.run(fuzz(server.url, opts.count, seed=opts.seed))
            wall, cpu = time.perf_counter() - t0, cpu_seconds(server.proc.pid) - cpu0
            with urllib.request.urlopen(server.url + "/healthz", timeout=5) as resp:
                health = json.loads(resp.read())
            with open(os.path.join(server.workdir, "server.log"), encoding="utf-8") as f:
                tracebacks = f.read().count("Traceback")
        finally:
            if server is not None:
                server.stop()
            redis.stop()
    print(f"sent {sent} mutated bodies (8 endpoints x {opts.count}) in {wall:.1f} s, server CPU {cpu:.1f} s "
          f"({1e6 * cpu / max(sent, 1):.0f} us/request)")
    print(f"non-error replies: {len(problems)}; tracebacks in the server log: {tracebacks}; "
          f"healthy afterwards: iteration {health['iteration']}")
    for name, body, problem in problems[:5]:
        print(f"  {name}: {problem} ({body[:80]}...)")
    return 0 if not problems and not tracebacks else 1


if __name__ == "__main__":
    sys.exit(main())
