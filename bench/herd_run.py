"""`./build.sh bench --herd N[,N...]`: one server, its own redis, N devices at once per iteration (herd.py)."""
import os
import signal
import sys
import tempfile
import threading
import time

from herd import HerdClients, percentile, raise_nofile
from run_all import RedisProc, ServerProc, cpu_seconds, loadavg, status_kib, write_yaml

from mindspore_federated.config import ALLOWED_CIPHERS

ROUNDS = ("startFLJob", "updateModel", "getModel")


def _rss_sampler(pid, peak, stop):
    """VmRSS every 0.2 s (VmHWM misses nothing, this gives the time series' max for the report too)."""
    while not stop.wait(0.2):
        rss = status_kib(pid, "VmRSS")
        if rss is None:
            return
        peak[0] = max(peak[0], rss)


def _snapshot(server, label, snaps):
    """SIGUSR2 to a server started under memprofile.py: it writes a tracemalloc snapshot."""
    before = len(server.lines)
    os.kill(server.proc.pid, signal.SIGUSR2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in server.lines[before:]:
            if line.startswith("SNAPSHOT "):
                snaps.append((label, line.split(" ", 1)[1], status_kib(server.proc.pid, "VmRSS")))
                return
        time.sleep(0.1)


class _ProfServer(ServerProc):
    """The server under bench/memprofile.py (tracemalloc; SIGUSR2 dumps a snapshot)."""

    def start(self, env_extra=None):
        import subprocess  # pylint: disable=import-outside-toplevel
        real = subprocess.Popen

        def popen(cmd, *a, **kw):
            if cmd[1:3] == ["-m", "mindspore_federated.server"]:
                cmd = [cmd[0], os.path.join(os.path.dirname(os.path.abspath(__file__)), "memprofile.py"),
                       *cmd[3:]]
            return real(cmd, *a, **kw)

        subprocess.Popen = popen
        try:
            return super().start(env_extra)
        finally:
            subprocess.Popen = real


def run_herd(devices, iterations, procs, model="lenet", profile=False, keep=False, https=False):
    """Starts redis + one server, runs `iterations` herds of `devices`, returns the result dict. `https`:
    enable_ssl (HTTPS device API, TLS + AUTH to a TLS-only Redis), certificates made for this run."""
    raise_nofile()
    workdir = tempfile.mkdtemp(prefix=f"msf-herd-{model}-{devices}-")
    tls = HttpsSetup(workdir) if https else None
    redis = RedisProc(workdir, tls=tls and tls.redis)
    server = None
    res = {"devices": devices, "model": model + (" https" if https else ""), "iterations": iterations,
           "procs": procs, "rows": [], "loadavg_start": loadavg(), "workdir": workdir}
    try:
        redis.start()
        yaml_path = write_yaml(workdir, redis.address, devices, iterations,  # windows of 30/30/60 minutes
                               extra=tls and tls.yaml_sections())
        env = {"MSF_TRACEMALLOC_DIR": workdir} if profile else {}
        kind = _ProfServer if profile else ServerProc
        if tls is None:
            server = kind(0, workdir, yaml_path, model).start(env)
        else:
            server = kind(0, workdir, yaml_path, model, entry=tls.entry, scheme="https").start({**env, **tls.env})
        pid = server.proc.pid
        res["base_rss_mib"] = status_kib(pid, "VmRSS") / 1024
        peak, stop = [0], threading.Event()
        threading.Thread(target=_rss_sampler, args=(pid, peak, stop), daemon=True).start()
        snaps = []
        with HerdClients(server.url, "Lenet", procs, ca_file=tls and tls.ca_file) as clients:
            for it in range(iterations):
                timeout = 120.0 + devices * 0.04
                cpu0 = cpu_seconds(pid)
                if profile and it == 0:
                    _snapshot(server, "baseline", snaps)
                    threading.Timer(float(os.environ.get("MSF_HERD_SNAP_AT", "20")), _snapshot,
                                    (server, "waiting", snaps)).start()
                r = clients.run_iteration(devices, timeout)
                cpu = cpu_seconds(pid) - cpu0
                res["rows"].append(_row(it + 1, devices, r, cpu))
                print(format_row(res["rows"][-1]), flush=True)
                if server.proc.poll() is not None:
                    break
        stop.set()
        res["peak_rss_mib"] = (status_kib(pid, "VmHWM") or peak[0]) / 1024
        res["snapshots"] = snaps
        if profile and len(snaps) >= 2:
            import memprofile  # pylint: disable=import-outside-toplevel
            res["profile"] = memprofile.compare(snaps[0][1], snaps[1][1])
            res["profile"].insert(0, f"RSS {snaps[0][2] / 1024:.0f} MiB -> {snaps[1][2] / 1024:.0f} MiB "
                                     f"({snaps[0][0]} -> {snaps[1][0]})")
    except Exception as exc:  # noqa: BLE001 - reported in the table, the next config still runs
        res["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if server is not None:
            server.stop()
        redis.stop()
        res["loadavg_end"] = loadavg()
        if not keep and "error" not in res:
            import shutil  # pylint: disable=import-outside-toplevel
            shutil.rmtree(workdir, ignore_errors=True)
    return res


class HttpsSetup:
    """enable_ssl for one herd run, certificates made now (tests/utils/certs.py): the server's PKCS#12, a
    TLS-only Redis with requirepass, the server through tests/utils/tls_entry.py, which lifts the enable_ssl
    NOT_BUILT row while that row names only mutual TLS between servers (one server here has no peer)."""

    SERVER_PW, CLIENT_PW, REDIS_PW = "bench-server-p12", "bench-client-p12", "bench-redis-pw"

    def __init__(self, workdir):
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if repo not in sys.path:
            sys.path.insert(0, repo)
        import pathlib  # pylint: disable=import-outside-toplevel

        from tests.utils.certs import TestCA, write_p12  # pylint: disable=import-outside-toplevel
        from tests.utils.redis_server import RedisTls  # pylint: disable=import-outside-toplevel

        d = pathlib.Path(workdir)
        ca = TestCA("bench-ca")
        self.ca_file = ca.write_pem(d / "ca.pem")
        self.server_p12 = write_p12(d / "server.p12", *ca.issue("127.0.0.1"), self.SERVER_PW)
        self.client_p12 = write_p12(d / "client.p12", *ca.issue("client"), self.CLIENT_PW)
        self.redis = RedisTls(d / "redis-pki")
        self.redis_args = self.redis.args
        self.redis.args = lambda port: [*self.redis_args(port), "--requirepass", self.REDIS_PW]
        self.entry = ("-m", "tests.utils.tls_entry", "server")
        self.env = {"MSF_SSL_SERVER_PASSWORD": self.SERVER_PW, "MSF_SSL_CLIENT_PASSWORD": self.CLIENT_PW,
                    "MSF_REDIS_PASSWORD": self.REDIS_PW, "PYTHONPATH": repo}

    def yaml_sections(self):
        return {"enable_ssl": True,
                "distributed_cache": {"cacert_filename": self.redis.ca_file},
                "ssl": {"server_cert_path": self.server_p12, "client_cert_path": self.client_p12,
                        "ca_cert_path": self.ca_file, "cipher_list": ":".join(ALLOWED_CIPHERS)}}


def _row(it, devices, r, cpu):
    lat = {k: (percentile(v, 50) * 1e3, percentile(v, 99) * 1e3) for k, v in r["latency"].items()}
    done = r["got_model"] == devices and r["accepted"] == devices
    wall = r["wall"]
    return {"iteration": it, "done": done, "accepted": r["accepted"], "got_model": r["got_model"],
            "wall_s": wall,
            "upd_per_s": r["accepted"] / wall if wall else 0.0,
            "cpu_ms_per_upd": cpu * 1e3 / r["accepted"] if r["accepted"] else float("nan"),
            "latency_ms": lat, "kinds": {f"{a} {b}": n for (a, b), n in r["kinds"].items()},
            "admitted_bad": {f"{a} {b}": n for (a, b), n in r["admitted_bad"].items()},
            "connect_retries": r["connect_retries"], "failures": r["failures"][:10],
            "n_failures": r["n_failures"]}


def format_row(row):
    lat = " ".join(f"{k} {row['latency_ms'][k][0]:.0f}/{row['latency_ms'][k][1]:.0f}" for k in ROUNDS)
    wall = f"{row['wall_s']:.1f} s" if row["wall_s"] else "-"
    lines = [f"  iteration {row['iteration']}: {'done' if row['done'] else 'NOT DONE'} "
             f"accepted {row['accepted']} got model {row['got_model']} wall {wall} "
             f"{row['upd_per_s']:.0f} upd/s CPU {row['cpu_ms_per_upd']:.2f} ms/upd; p50/p99 ms: {lat}; "
             f"connect retries {row['connect_retries']}"]
    bad = {k: n for k, n in row["kinds"].items() if not k.endswith((" SUCCEED", " SucNotReady"))}
    for k, n in sorted(bad.items()):
        lines.append(f"    non-success reply {k}: {n}")
    for k, n in sorted(row["admitted_bad"].items()):
        lines.append(f"    ...to ADMITTED devices: {k}: {n}")
    for f in row["failures"][:5]:
        lines.append(f"    failure: {f}")
    return "\n".join(lines)


def format_summary(results):
    lines = ["", "herd: model | devices at once | iterations done | wall s (mean) | upd/s | CPU ms/upd | "
                 "peak RSS MiB | admitted refused | non-success replies"]
    for res in results:
        rows = res["rows"]
        if "error" in res and not rows:
            lines.append(f"  {res['devices']:>6}  ERROR {res['error']}")
            continue
        done = sum(r["done"] for r in rows)
        walls = [r["wall_s"] for r in rows if r["wall_s"]]
        upd = [r["upd_per_s"] for r in rows if r["wall_s"]]
        cpu = [r["cpu_ms_per_upd"] for r in rows if r["accepted"]]
        refused = sum(sum(r["admitted_bad"].values()) for r in rows)
        other = sum(n for r in rows for k, n in r["kinds"].items()
                    if not k.endswith((" SUCCEED", " SucNotReady")))
        mean = (lambda v: sum(v) / len(v) if v else float("nan"))  # noqa: E731
        lines.append(f"  {res['model']} | {res['devices']:>6,} | {done}/{res['iterations']} | "
                     f"{mean(walls):7.1f} | {mean(upd):6.0f} | {mean(cpu):5.2f} | "
                     f"{res.get('peak_rss_mib', float('nan')):6.0f} | {refused} | {other}"
                     + (f"  ERROR {res['error']}" if "error" in res else ""))
        for line in res.get("profile", []):
            lines.append("    " + line)
    return "\n".join(lines)


def main(device_counts, iterations, procs, profile=False, keep=False, model="lenet", https=False):
    """Every N once (plain HTTP), or with `https` twice in a row: plain, then enable_ssl."""
    results = []
    for n, tls in [(n, tls) for n in device_counts for tls in ((False, True) if https else (False,))]:
        print(f"herd: {n:,} {model} devices at once{' over HTTPS' if tls else ''}, {iterations} iterations, "
              f"{procs} client processes, loadavg {loadavg():.2f}", flush=True)
        results.append(run_herd(n, iterations, procs, model=model, profile=profile, keep=keep, https=tls))
        res = results[-1]
        print(f"  peak server RSS {res.get('peak_rss_mib', float('nan')):.0f} MiB (READY "
              f"{res.get('base_rss_mib', float('nan')):.0f} MiB){'  ERROR ' + res['error'] if 'error' in res else ''}",
              flush=True)
    print(format_summary(results), flush=True)
    return results


if __name__ == "__main__":
    sys.exit(0 if all("error" not in r for r in main([int(x) for x in sys.argv[1].split(",")], 3, 4)) else 1)
