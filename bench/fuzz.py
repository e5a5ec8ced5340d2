"""The long HTTP-level fuzz campaign (`./build.sh fuzz`): by default a fresh redis-server and one server per
engine (the small test model, short client time limits), N mutated requests each (tests/fuzz/), then a real
iteration; or `--target host:port --fl-name NAME` against a running server (`--tls CA.pem` for HTTPS).
Prints the counts and writes bench/results/fuzz.json; exits 1 on any crash, hang or malformed reply."""
import argparse
import asyncio
import json
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.fuzz.http_fuzz import Target, campaign, real_iteration  # noqa: E402
from tests.utils.cluster import start_server, write_yaml  # noqa: E402
from tests.utils.multi import ENTRY  # noqa: E402
from tests.utils.procs import ProcessGroup  # noqa: E402
from tests.utils.redis_server import RedisServer  # noqa: E402

FUZZ_LIMITS = {"http_header_timeout": 1.0, "http_body_timeout": 1.0, "http_idle_timeout": 2.0,
               "max_connections": 4096}
FL_NAME = "fuzz"


def _progress(number, result):
    print(f"  {number:>7} inputs  {result.outcomes.most_common()}  failed={result.failed}", flush=True)


def _log_errors(output, keep=3):
    """The first `keep` error records of a server log (each with its traceback)."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if "[ERROR]" in line or line.startswith("Traceback")]
    return ["\n".join(lines[i:i + 40]) for i in starts[:keep]]


def run_target(args, address, fl_name):
    target = Target.of(address, args.tls, args.server_name)
    return asyncio.run(campaign(target, fl_name, args.inputs, seed=args.seed, concurrency=args.concurrency,
                                deadline_s=args.deadline, health_every=args.health_every, progress=_progress))


def run_engine(args, engine, workdir):
    """A fresh redis-server and server of `engine`; the campaign, liveness, the log, a real iteration."""
    redis = RedisServer(os.path.join(workdir, f"redis-{engine}"))
    redis.start()
    group = ProcessGroup(os.path.join(workdir, f"logs-{engine}"))
    try:
        yaml_path = write_yaml(workdir, redis.address, FL_NAME, round={"start_fl_job_threshold": 2},
                               client={"http_engine": engine, **FUZZ_LIMITS})
        proc, address = start_server(group, yaml_path, os.path.join(workdir, f"srv-{engine}"), entry=ENTRY)
        print(f"{engine}: server {address} (pid {proc.pid}), {args.inputs} inputs", flush=True)
        result = run_target(args, address, FL_NAME)
        summary = result.summary()
        output = proc.output()
        summary["server_alive"] = proc.alive()
        summary["log_tracebacks"] = output.count("Traceback") + output.count("[ERROR]")
        summary["log_errors"] = _log_errors(output)
        try:
            summary["real_iteration"] = real_iteration(address, FL_NAME, 2) == 2
        except (AssertionError, OSError) as exc:
            summary["real_iteration"] = False
            summary["real_iteration_error"] = repr(exc)[:500]
        return summary
    finally:
        group.close()
        redis.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, default=100_000, help="mutated requests per engine")
    parser.add_argument("--engine", choices=("fast", "aiohttp", "both"), default="both")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=32, help="connections at a time")
    parser.add_argument("--deadline", type=float, default=15.0, help="s for each connection to end")
    parser.add_argument("--health-every", type=int, default=5000)
    parser.add_argument("--target", help="host:port of a running server (no processes are started)")
    parser.add_argument("--fl-name", default=FL_NAME, help="fl_name of --target's job")
    parser.add_argument("--tls", metavar="CA", help="HTTPS: trust this CA file (PEM)")
    parser.add_argument("--server-name", help="with --tls: the name the certificate must carry (default: "
                        "the chain is checked, the name is not)")
    parser.add_argument("--json", default=os.path.join(REPO, "bench", "results", "fuzz.json"))
    args = parser.parse_args()
    t0 = time.monotonic()
    report = {"inputs_per_engine": args.inputs, "seed": args.seed, "tls": bool(args.tls)}
    if args.target:
        result = run_target(args, args.target, args.fl_name)
        report["target"] = result.summary()
        ok = result.failed == 0
    else:
        with tempfile.TemporaryDirectory(prefix="msf-fuzz-") as workdir:
            engines = ("fast", "aiohttp") if args.engine == "both" else (args.engine,)
            for engine in engines:
                report[engine] = run_engine(args, engine, workdir)
        ok = all(r["failed"] == 0 and r["server_alive"] and not r["log_tracebacks"] and r["real_iteration"]
                 for k, r in report.items() if k in ("fast", "aiohttp"))
    report["seconds"] = round(time.monotonic() - t0, 1)
    report["ok"] = ok
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    for key, value in report.items():
        if isinstance(value, dict):
            print(f"{key}: inputs={value['inputs']} failed={value['failed']} outcomes={value['outcomes']} "
                  f"alive={value.get('server_alive')} tracebacks={value.get('log_tracebacks')} "
                  f"real_iteration={value.get('real_iteration')} ({value['seconds']} s)")
    print("fuzz:", "OK" if ok else "FAILED", f"(json {args.json})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
