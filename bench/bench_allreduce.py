"""All-reduce throughput of a 10 MB float32 model over 2 and 3 loopback processes, plain and mutual TLS,
next to raw loopback TCP.

Usage: .venv/bin/python bench/bench_allreduce.py [--mb 10] [--iters 20] [--no-tls]
Prints one line per measurement, e.g. ``allreduce 2 procs: 10.0 MB model, 12.3 ms/op, 0.81 GB/s``
(``allreduce 2 procs mTLS: ...`` for the TLS link, certificates made at start with `cryptography`).
Throughput is model bytes per all-reduce divided by the slowest rank's time per all-reduce.
"""
import argparse
import datetime
import multiprocessing as mp
import os
import socket
import tempfile
import time

import numpy as np

from mindspore_federated import _core

TIMEOUT = 30.0


def make_tls_options(ca_dir):
    """Link options for _core.Communicator(tls=...): one test CA (file in `ca_dir`) and one EC identity for
    both sides of every rank (the same material a server reads from its PKCS#12 files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(name, key, issuer, issuer_key, ca):
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer or subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .sign(issuer_key or key, hashes.SHA256()))

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("bench-ca", ca_key, None, None, True)
    leaf = cert("bench-server", leaf_key, ca.subject, ca_key, False)
    pem = serialization.Encoding.PEM
    ca_file = os.path.join(ca_dir, "ca.pem")
    with open(ca_file, "wb") as f:
        f.write(ca.public_bytes(pem))
    key = leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {"server_cert": leaf.public_bytes(pem), "server_key": key, "client_cert": leaf.public_bytes(pem),
            "client_key": key, "ca_file": ca_file, "ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256"}


def _rank_main(rank, n_elems, iters, addr_q, group_q, barrier, result_q, tls=None):
    with _core.Communicator(tls=tls) as comm:
        addr_q.put((rank, comm.address))
        group = group_q.get(timeout=TIMEOUT)
        data = np.full(n_elems, rank + 1, dtype=np.float32)
        comm.allreduce(group, rank, data, 0, TIMEOUT)  # warm-up: connections and buffers
        expect = len(group) * (len(group) + 1) / 2
        ok = bool(np.all(data == expect))
        barrier.wait(TIMEOUT)
        start = time.perf_counter()
        for it in range(iters):
            comm.allreduce(group, rank, data, it + 1, TIMEOUT)
        elapsed = time.perf_counter() - start
        barrier.wait(TIMEOUT)  # keep every endpoint up until all ranks are done
        result_q.put((rank, elapsed, ok))


def bench_allreduce(nprocs, model_bytes, iters, tls=None):
    ctx = mp.get_context("spawn")
    addr_q, result_q = ctx.Queue(), ctx.Queue()
    group_qs = [ctx.Queue() for _ in range(nprocs)]
    barrier = ctx.Barrier(nprocs)
    n_elems = model_bytes // 4
    procs = [ctx.Process(target=_rank_main,
                         args=(r, n_elems, iters, addr_q, group_qs[r], barrier, result_q, tls))
             for r in range(nprocs)]
    for p in procs:
        p.start()
    addrs = dict(addr_q.get(timeout=TIMEOUT) for _ in range(nprocs))
    group = [addrs[r] for r in range(nprocs)]
    for q in group_qs:
        q.put(group)
    results = [result_q.get(timeout=TIMEOUT * 4) for _ in range(nprocs)]
    for p in procs:
        p.join(TIMEOUT)
    assert all(ok for _, _, ok in results), "wrong all-reduce result"
    per_op = max(elapsed for _, elapsed, _ in results) / iters
    return per_op, model_bytes / per_op / 1e9


def _sink(port_q, total):
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port_q.put(srv.getsockname()[1])
        conn, _ = srv.accept()
        with conn:
            buf = bytearray(4 << 20)
            got = 0
            while got < total:
                n = conn.recv_into(buf)
                if n == 0:
                    break
                got += n
            conn.sendall(b"k")


def bench_raw_tcp(model_bytes, iters):
    """One TCP stream between two processes on loopback: bytes/s for `iters` model-sized sends."""
    ctx = mp.get_context("spawn")
    port_q = ctx.Queue()
    total = model_bytes * iters
    sink = ctx.Process(target=_sink, args=(port_q, total))
    sink.start()
    port = port_q.get(timeout=TIMEOUT)
    payload = memoryview(bytes(model_bytes))
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        start = time.perf_counter()
        for _ in range(iters):
            s.sendall(payload)
        s.recv(1)  # the sink has read everything
        elapsed = time.perf_counter() - start
    sink.join(TIMEOUT)
    return total / elapsed / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10.0, help="model size in MB (1e6 bytes)")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--no-tls", action="store_true", help="skip the mutual-TLS measurements")
    args = parser.parse_args(argv)
    model_bytes = int(args.mb * 1e6) // 4 * 4
    raw = bench_raw_tcp(model_bytes, args.iters * 5)
    print(f"raw loopback TCP, 1 stream: {raw:.2f} GB/s")
    for nprocs in (2, 3):
        per_op, gbps = bench_allreduce(nprocs, model_bytes, args.iters)
        mb, ms = model_bytes / 1e6, per_op * 1e3
        print(f"allreduce {nprocs} procs: {mb:.1f} MB model, {ms:.1f} ms/op, {gbps:.2f} GB/s")
    if args.no_tls:
        return 0
    with tempfile.TemporaryDirectory() as ca_dir:
        tls = make_tls_options(ca_dir)
        for nprocs in (2, 3):
            per_op, gbps = bench_allreduce(nprocs, model_bytes, args.iters, tls)
            mb, ms = model_bytes / 1e6, per_op * 1e3
            print(f"allreduce {nprocs} procs mTLS: {mb:.1f} MB model, {ms:.1f} ms/op, {gbps:.2f} GB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
