"""Secure-aggregation benchmark: per model (LeNet, 10x LeNet), a fresh redis-server and ONE server, N devices
(our SDK, in this process) per iteration; plain FedAvg vs PW_ENCRYPT with 0, 10 and 30 % of the devices dropping
out after getSecrets (their masks are reconstructed). Prints iteration wall time, server CPU per device, this
process's (the devices') CPU, and the server's unmask time (secret reconstruction + noise), writes
bench/results/secagg.json. The first iteration of every case is warm-up.

    .venv/bin/python bench/secagg.py                     # LeNet and 10x LeNet, N=100
    .venv/bin/python bench/secagg.py --model lenet --devices 50 --iterations 2
"""
import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time

import numpy as np
import yaml

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, os.path.dirname(BENCH_DIR))

from run_all import FL_NAME, RedisProc, ServerProc, cpu_seconds, write_yaml  # noqa: E402

from mindspore_federated.client.device import Device, RetryPolicy  # noqa: E402

UNMASKED = re.compile(r"unmasked iteration (\d+): (\d+) sharers, (\d+) dropped, ([\d.]+) s")
CASES = {"plain": ("plain", 0.0), "pw0": ("PW_ENCRYPT", 0.0), "pw10": ("PW_ENCRYPT", 0.1),
         "pw30": ("PW_ENCRYPT", 0.3)}


def case_yaml(workdir, redis_address, mode, devices, dropout, iterations):
    path = write_yaml(workdir, redis_address, devices, iterations)
    with open(path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    dropped = int(round(devices * dropout))
    cfg["round"]["update_model_ratio"] = (devices - dropped) / devices
    if mode != "plain":
        cfg["encrypt"] = {"encrypt_type": mode, "pw_encrypt": {
            "share_secrets_ratio": 1.0, "cipher_time_window": 1_800_000,
            "reconstruct_secrets_threshold": max(1, (devices - dropped) // 2)}}
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg, f)
    return path, dropped


async def one_iteration(url, devices, dropped, round_no, timeout, retry_delay):
    policy = RetryPolicy(retry_delay=retry_delay, max_retry_delay=max(0.5, retry_delay), step_timeout=timeout,
                         iteration_timeout=timeout)

    def train(features, _plan):
        return {n: np.asarray(w, np.float32) + np.float32(0.001) for n, w in features.items()}

    devs = [Device([url], FL_NAME, fl_id=f"bench-{round_no}-{i:05d}", data_size=1 + i % 7, policy=policy,
                   drop_at="getSecrets" if i < dropped else None) for i in range(devices)]
    try:
        outcomes = await asyncio.gather(*(d.run_iteration(train, fetch_model=True) for d in devs))
    finally:
        for d in devs:
            await d.close()
    return sum(1 for o in outcomes if o.accepted and not o.dropped)


def run_case(model, mode, dropout, devices, iterations, timeout, retry_delay):
    rows = []
    with tempfile.TemporaryDirectory(prefix="secagg_bench_") as workdir:
        redis = RedisProc(workdir).start()
        server = None
        try:
            path, dropped = case_yaml(workdir, redis.address, mode, devices, dropout, iterations)
            server = ServerProc(0, workdir, path, model).start()
            for it in range(iterations):
                cpu0, client0, t0 = cpu_seconds(server.proc.pid), time.process_time(), time.perf_counter()
                accepted = asyncio.run(one_iteration(server.url, devices, dropped, it, timeout, retry_delay))
                wall = time.perf_counter() - t0
                rows.append({"iteration": it + 1, "wall_s": wall, "accepted": accepted,
                             "server_cpu_ms_per_device": 1000 * (cpu_seconds(server.proc.pid) - cpu0) / devices,
                             "client_cpu_s": time.process_time() - client0})
            time.sleep(0.5)
            with open(os.path.join(server.workdir, "server.log"), encoding="utf-8") as f:
                unmask = {int(m.group(1)): float(m.group(4)) for m in UNMASKED.finditer(f.read())}
            for row in rows:
                row["unmask_s"] = unmask.get(row["iteration"])
        finally:
            if server is not None:
                server.stop()
            redis.stop()
    measured = rows[1:] or rows
    summary = {"model": model, "mode": mode, "devices": devices, "dropout": dropout, "iterations": rows}
    for key in ("wall_s", "server_cpu_ms_per_device", "client_cpu_s"):
        summary[key] = float(np.mean([r[key] for r in measured]))
    unmasks = [r["unmask_s"] for r in measured if r["unmask_s"] is not None]
    summary["unmask_s"] = float(np.mean(unmasks)) if unmasks else None
    return summary


def print_table(results):
    print(f"{'model':9} {'mode':11} {'N':>4} {'drop':>5} {'wall s':>8} {'srv CPU ms/dev':>15} "
          f"{'devices CPU s':>14} {'unmask s':>9}")
    for r in results:
        unmask = f"{r['unmask_s']:.3f}" if r["unmask_s"] is not None else "-"
        print(f"{r['model']:9} {r['mode']:11} {r['devices']:>4} {r['dropout']:>5.0%} {r['wall_s']:>8.2f} "
              f"{r['server_cpu_ms_per_device']:>15.2f} {r['client_cpu_s']:>14.2f} {unmask:>9}")
    for model in sorted({r["model"] for r in results}):
        base = next((r for r in results if r["model"] == model and r["mode"] == "plain"), None)
        pw = next((r for r in results if r["model"] == model and r["mode"] != "plain" and r["dropout"] == 0), None)
        if base and pw:
            cpu = pw["server_cpu_ms_per_device"] / base["server_cpu_ms_per_device"]
            wall = pw["wall_s"] / base["wall_s"]
            verdict = "PASS" if cpu <= 1.5 else "FAIL"
            print(f"{model}: PW/plain server CPU per device {cpu:.2f}x (target <= 1.5x: {verdict}); "
                  f"wall {wall:.2f}x (the devices' own key agreement runs on this machine too)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="lenet,lenet10x")
    p.add_argument("--devices", type=int, default=100)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    p.add_argument("--retry-delay", type=float, default=0.5, help="the devices' pause after SucNotReady (s)")
    p.add_argument("--json", default=os.path.join(BENCH_DIR, "results", "secagg.json"))
    opts = p.parse_args(argv)
    results = []
    for model in opts.model.split(","):
        for case in opts.cases.split(","):
            mode, dropout = CASES[case]
            print(f"... {model} {mode} dropout {dropout:.0%}", flush=True)
            results.append(run_case(model, mode, dropout, opts.devices, opts.iterations, opts.timeout,
                                    opts.retry_delay))
            print(json.dumps({k: v for k, v in results[-1].items() if k != "iterations"}), flush=True)
    print_table(results)
    os.makedirs(os.path.dirname(opts.json), exist_ok=True)
    with open(opts.json, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
