"""Compression bench (`run_all.py --compression`): per model (LeNet, 10x LeNet) a plain and a compressed
cluster (QUANT downloads + DIFF_SPARSE_QUANT uploads at rate 0.4), side by side: bytes on the wire per device
per iteration (HTTP bodies, up and down) and server CPU per accepted update; then the digits example's
accuracy trained plain and with both compressions."""
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time

import aiohttp
import numpy as np
import yaml

from mindspore_federated.client import messages as msg
from mindspore_federated.compression import diff_sparse_quant_encode

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
import run_all  # noqa: E402  (bench/ on sys.path first)

COMPRESSION = {"upload_compress_type": "DIFF_SPARSE_QUANT", "upload_sparse_rate": 0.4,
               "download_compress_type": "QUANT"}
HEADERS = {"Content-Type": "application/octet-stream"}
DEVICES = 50
ITERATIONS = 4          # the first is warm-up
MODEL_WAIT_S = 120.0
DIGITS = {"devices": 10, "iterations": 10, "epochs": 2, "batch_size": 16, "lr": 0.02}


def _yaml(workdir, redis_address, threshold, iterations, compressed, client=None):
    path = run_all.write_yaml(workdir, redis_address, threshold, iterations)
    with open(path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    if compressed:
        cfg["compression"] = dict(COMPRESSION)
    cfg["client"].update(client or {})
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg, f)
    return path


class Wire:
    """Bytes of request and reply bodies, per round."""

    def __init__(self):
        self.up = {}
        self.down = {}

    def add(self, name, sent, got):
        self.up[name] = self.up.get(name, 0) + sent
        self.down[name] = self.down.get(name, 0) + got


async def _post(session, url, name, body, wire):
    async with session.post(f"{url}/{name}", data=body, headers=HEADERS) as resp:
        payload = await resp.read()
    if wire is not None:
        wire.add(name, len(body), len(payload))
    return msg.PARSERS[name](payload)


async def _device(session, url, k, iteration, compressed, wire, rng_seed):
    n = 1 + k % 8
    fl_id = f"bench-{iteration}-{k}"
    types = (msg.CompressType.QUANT,) if compressed else ()
    start = await _post(session, url, "startFLJob",
                        msg.build_start_fl_job("Lenet", fl_id, iteration, n, download_compress_types=types), wire)
    assert start.retcode == 200, start.reason
    base = start.model()
    rng = np.random.default_rng(rng_seed)
    uploads = {k2: (v + rng.normal(0, 1e-3, v.size).astype(np.float32)) * np.float32(n) for k2, v in base.items()}
    if compressed:
        names, coded = diff_sparse_quant_encode(uploads, base, n, iteration, start.upload_sparse_rate)
        body = msg.build_update_model("Lenet", fl_id, iteration, {}, compressed_features=coded,
                                      upload_compress_type=msg.CompressType.DIFF_SPARSE_QUANT,
                                      upload_sparse_rate=start.upload_sparse_rate, name_vec=names)
    else:
        body = msg.build_update_model("Lenet", fl_id, iteration, uploads)
    return body


async def _iteration(session, server, iteration, compressed):
    wire = Wire()
    bodies = await asyncio.gather(*(_device(session, server.url, k, iteration, compressed, wire,
                                            iteration * 1000 + k) for k in range(DEVICES)))
    cpu0, t0 = run_all.cpu_seconds(server.proc.pid), time.monotonic()
    replies = await asyncio.gather(*(_post(session, server.url, "updateModel", b, wire) for b in bodies))
    assert all(r.retcode == 200 for r in replies), [r.reason for r in replies if r.retcode != 200][:3]
    deadline = time.monotonic() + MODEL_WAIT_S
    while True:
        probe = await _post(session, server.url, "getModel", msg.build_get_model("Lenet", iteration), None)
        if probe.retcode == 200:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"no model for iteration {iteration} within {MODEL_WAIT_S:.0f} s")
        await asyncio.sleep(0.01)
    cpu = run_all.cpu_seconds(server.proc.pid) - cpu0
    wall = time.monotonic() - t0
    types = (msg.CompressType.QUANT,) if compressed else ()
    await asyncio.gather(*(_post(session, server.url, "getModel",
                                 msg.build_get_model("Lenet", iteration, download_compress_types=types), wire)
                           for _ in range(DEVICES)))
    return wire, cpu, wall


async def _drive(server, compressed):
    rows = []
    async with aiohttp.ClientSession() as session:
        for it in range(1, ITERATIONS + 1):
            rows.append(await _iteration(session, server, it, compressed))
    return rows[1:]


@contextlib.contextmanager
def _cluster(tag, model, make_yaml, keep):
    """redis + 1 server (YAML from make_yaml(workdir, redis_address)); stopped by PID on the way out."""
    workdir = tempfile.mkdtemp(prefix=f"bench_compress_{tag}_")
    redis = run_all.RedisProc(workdir).start()
    server = None
    try:
        server = run_all.ServerProc(0, workdir, make_yaml(workdir, redis.address), model).start()
        yield server
    finally:
        if server is not None:
            server.stop()
        redis.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def wire_run(model, compressed, keep=False):
    """One cluster (redis + 1 server): bytes per device per iteration and server CPU per update."""
    with _cluster(model, model, lambda w, a: _yaml(w, a, DEVICES, ITERATIONS, compressed), keep) as server:
        rows = asyncio.run(_drive(server, compressed))
    per = len(rows) * DEVICES
    up = sum(sum(w.up.values()) for w, _, _ in rows) / per
    down = sum(sum(w.down.values()) for w, _, _ in rows) / per
    update_up = sum(w.up["updateModel"] for w, _, _ in rows) / per
    model_down = sum(w.down["startFLJob"] + w.down["getModel"] for w, _, _ in rows) / per
    cpu_ms = sum(c for _, c, _ in rows) / per * 1e3
    return {"model": model, "compressed": compressed, "up_bytes": up, "down_bytes": down,
            "update_up_bytes": update_up, "model_down_bytes": model_down, "cpu_ms_per_update": cpu_ms,
            "wall_s": sum(w for _, _, w in rows) / len(rows)}


def digits_run(compressed, keep=False):
    """The digits example (./build.sh run settings) on redis + 1 server; returns the reports' accuracies."""
    sys.path.insert(0, run_all.ROOT)
    from example.cross_device_lenet_femnist.run_devices import (
        run_devices,  # pylint: disable=import-outside-toplevel
    )
    d = DIGITS
    client = {"client_epoch_num": d["epochs"], "client_batch_size": d["batch_size"], "client_learning_rate": d["lr"]}
    with _cluster("digits", "lenet", lambda w, a: _yaml(w, a, d["devices"], d["iterations"], compressed, client),
                  keep) as server:
        t0 = time.monotonic()
        reports = asyncio.run(run_devices([server.url], "Lenet", d["devices"], d["iterations"], seed=0,
                                          compress=compressed))
    return {"compressed": compressed, "start": reports[0].start_test_accuracy,
            "accuracy": [r.test_accuracy for r in reports], "wall_s": time.monotonic() - t0}


def format_results(wire, digits):
    lines = [f"compression: {DEVICES} devices x {ITERATIONS - 1} iterations (+1 warm-up), 1 server; bytes are "
             "HTTP bodies per device per iteration (startFLJob + updateModel + getModel)",
             f"{'model':9} {'mode':10} {'up B':>10} {'down B':>10} {'update B':>10} {'model B':>10} "
             f"{'CPU ms/update':>14}"]
    for r in wire:
        lines.append(f"{r['model']:9} {'compressed' if r['compressed'] else 'plain':10} {r['up_bytes']:>10,.0f} "
                     f"{r['down_bytes']:>10,.0f} {r['update_up_bytes']:>10,.0f} {r['model_down_bytes']:>10,.0f} "
                     f"{r['cpu_ms_per_update']:>14.3f}")
    for model in sorted({r["model"] for r in wire}):
        pair = {r["compressed"]: r for r in wire if r["model"] == model}
        if len(pair) == 2:
            lines.append(f"{model}: up x{pair[False]['up_bytes'] / pair[True]['up_bytes']:.2f} smaller, down "
                         f"x{pair[False]['down_bytes'] / pair[True]['down_bytes']:.2f} smaller, server CPU "
                         f"x{pair[True]['cpu_ms_per_update'] / pair[False]['cpu_ms_per_update']:.2f}")
    d = DIGITS
    for r in digits:
        lines.append(f"digits {'compressed' if r['compressed'] else 'plain':10} ({d['devices']} devices, "
                     f"{d['iterations']} iterations): accuracy {r['start']:.3f} -> "
                     + " ".join(f"{a:.3f}" for a in r["accuracy"]) + f"  ({r['wall_s']:.0f} s)")
    return "\n".join(lines)


def main(models=("lenet", "lenet10x"), digits=True, keep=False):
    wire = [wire_run(m, c, keep) for m in models for c in (False, True)]
    acc = [digits_run(c, keep) for c in (False, True)] if digits else []
    print(format_results(wire, acc), flush=True)
    return {"wire": wire, "digits": acc}


if __name__ == "__main__":
    main(digits="--no-digits" not in sys.argv)
