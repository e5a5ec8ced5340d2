"""Load generator CLI: each iteration N fresh simulated devices upload `w + delta` and fetch the new model."""
import argparse
import asyncio
import math
import sys
import time
import uuid
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from mindspore_federated import errors
from mindspore_federated.client.device import Device, RetryPolicy, https_context
from mindspore_federated.client.messages import CompressType, ResponseCode
from mindspore_federated.client.secure import PHASES

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
_PROBE_POINTS = 16
ENCRYPT_TYPES = ("NOT_ENCRYPT", "PW_ENCRYPT", "STABLE_PW_ENCRYPT", "SIGNDS", "DP_ENCRYPT")
PAIRWISE = ("PW_ENCRYPT", "STABLE_PW_ENCRYPT")
UNCHECKED = ("SIGNDS", "DP_ENCRYPT")   # their uploads are not w + delta: the model check is off
_BAR_WIDTH = 30


def positive_int(text):
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def positive_float(text):
    """argparse type: a number > 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m mindspore_federated.client.simulator", description=__doc__,
        epilog="Devices that are turned away (OutOfTime) retry in the next server iteration, so --devices "
               "should be a multiple of start_fl_job_threshold (with update_model_ratio 1.0) or an iteration "
               "may wait for devices that never come, until --iteration-timeout.")
    p.add_argument("--servers", required=True, help="comma-separated base URLs, e.g. http://127.0.0.1:6666")
    p.add_argument("--ca-file", default=None, help="https:// servers: verify their certificates with this CA")
    p.add_argument("--crl-file", default=None, help="https:// servers: certificate revocation list")
    p.add_argument("--fl-name", required=True)
    p.add_argument("--devices", type=positive_int, default=10, help="devices per iteration")
    p.add_argument("--iterations", type=positive_int, default=1)
    p.add_argument("--data-size", type=positive_int, default=32)
    p.add_argument("--delta", type=float, default=1e-3, help="each device uploads w + delta")
    p.add_argument("--concurrency", type=positive_int, default=256, help="max requests/devices in flight")
    p.add_argument("--sessions", type=positive_int, default=2, help="aiohttp sessions shared by the devices")
    p.add_argument("--url-prefix", default="")
    p.add_argument("--http-timeout", type=positive_float, default=30.0)
    p.add_argument("--retry-delay", type=positive_float, default=0.5)
    p.add_argument("--retry-backoff", type=positive_float, default=1.0)
    p.add_argument("--max-retry-delay", type=positive_float, default=5.0)
    p.add_argument("--step-timeout", type=positive_float, default=120.0)
    p.add_argument("--max-restart-wait", type=positive_float, default=60.0)
    p.add_argument("--iteration-timeout", type=positive_float, default=600.0)
    p.add_argument("--quant", action="store_true", help="ask for QUANT model downloads (disables the check)")
    p.add_argument("--compress", action="store_true",
                   help="both compressions: QUANT downloads, DIFF_SPARSE_QUANT uploads when the servers "
                        "advertise them (disables the check)")
    p.add_argument("--file-identifier", action="store_true", help="send bodies with the FLJ0 identifier")
    p.add_argument("--no-fetch-model", action="store_true", help="skip getModel after updateModel")
    p.add_argument("--no-check", action="store_true", help="do not check the new model equals w + delta")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--encrypt", choices=ENCRYPT_TYPES, default="NOT_ENCRYPT",
                   help="the cluster's encrypt_type: devices follow the plan (PW masks, SIGNDS signs); with "
                        "DP_ENCRYPT they add the plan's noise; SIGNDS/DP uploads are not checked against w + delta")
    p.add_argument("--dropouts", type=int, default=0, help="devices per iteration that drop out (see --drop-at)")
    p.add_argument("--drop-at", choices=PHASES, default="getSecrets",
                   help="the phase after which the --dropouts devices stop (default: before uploading)")
    p.add_argument("--equip-ca", nargs=2, metavar=("CERT_PEM", "KEY_PEM"),
                   help="for servers with client_verify.pki_verify: an equipment CA (certificate and "
                        "unencrypted key) that issues every device its own certificate; devices then sign")
    return p.parse_args(argv)


def _policy(opts):
    return RetryPolicy(http_timeout=opts.http_timeout, retry_delay=opts.retry_delay,
                       retry_backoff=opts.retry_backoff, max_retry_delay=opts.max_retry_delay,
                       step_timeout=opts.step_timeout, max_restart_wait=opts.max_restart_wait,
                       iteration_timeout=opts.iteration_timeout)


# ---------------------------------------------------------------------------------------------
# Model check: a few sampled points per weight, so no device keeps a whole model copy.
# ---------------------------------------------------------------------------------------------

def make_probe(features, delta):
    """name -> (indices, old values, expected values) sampled from the model a device trained from."""
    probe = {}
    for name, value in features.items():
        flat = np.asarray(value, dtype=np.float32).reshape(-1)
        idx = np.unique(np.linspace(0, max(flat.size - 1, 0), min(_PROBE_POINTS, flat.size)).astype(np.int64))
        old = flat[idx].astype(np.float64)
        probe[name] = (idx, old, old + np.float32(delta))
    return probe


def _close(got, want, delta):
    tol = 0.25 * abs(delta) + 1e-5 * np.abs(want) + 1e-7
    return bool(np.all(np.abs(got - want) <= tol))


def check_model(model, probe, delta):
    """True when every sampled weight moved by delta or stayed put (require_aggr=False), and one moved."""
    moved = False
    for name, (idx, old, new) in probe.items():
        value = model.get(name) if model else None
        if value is None or np.asarray(value).size <= (idx[-1] if idx.size else -1):
            return False
        got = np.asarray(value, dtype=np.float32).reshape(-1)[idx].astype(np.float64)
        if _close(got, new, delta):
            moved = moved or idx.size > 0
        elif not _close(got, old, delta):
            return False
    return moved or delta == 0


# ---------------------------------------------------------------------------------------------
# Per-iteration bookkeeping and output
# ---------------------------------------------------------------------------------------------

@dataclass
class IterationStats:
    """What one simulator iteration observed."""

    index: int
    devices: int
    done: int = 0
    accepted: int = 0
    failures: int = 0
    mismatched: int = 0
    finished: int = 0
    restarts: int = 0
    turned_away: int = 0
    dropped: int = 0
    wall: float = 0.0
    update_latencies: list = field(default_factory=list)
    server_iterations: set = field(default_factory=set)
    errors: list = field(default_factory=list)

    @property
    def ok(self):
        """No failure, no wrong model, and at least one accepted update unless the job finished."""
        return self.failures == 0 and self.mismatched == 0 and (self.accepted > 0 or self.finished > 0)


def turned_away(outcome):
    """True when startFLJob turned the device away (OutOfTime: that iteration's startFLJob round was full)."""
    return outcome is not None and ("startFLJob", ResponseCode.OutOfTime) in outcome.retcodes


def over_admission_warning(turned, devices):
    """The warning printed when devices were turned away at startFLJob, else None."""
    return errors.SIM_OVER_ADMISSION.format(turned_away=turned, devices=devices) if turned else None


def percentile_ms(values, q):
    """Nearest-rank percentile of seconds, in milliseconds (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(q / 100.0 * len(ordered)) - 1))
    return ordered[rank] * 1000.0


def summary_line(stats):
    """The one stdout line printed per iteration."""
    its = sorted(stats.server_iterations)
    server_its = "-" if not its else str(its[0]) if len(its) == 1 else f"{its[0]}-{its[-1]}"
    return (f"iteration={stats.index} server_iteration={server_its} devices={stats.devices} "
            f"accepted={stats.accepted} failures={stats.failures} mismatched={stats.mismatched} "
            f"finished={stats.finished} restarts={stats.restarts} wall={stats.wall:.3f}s "
            f"update_p50={percentile_ms(stats.update_latencies, 50):.1f}ms "
            f"update_p99={percentile_ms(stats.update_latencies, 99):.1f}ms"
            + (f" dropped={stats.dropped}" if stats.dropped else ""))


class Progress:
    """A plain-text progress bar on a stream: redrawn in place on a terminal, a line every few s otherwise."""

    def __init__(self, stream, stats, label, enabled=True):
        self.stream = stream
        self.stats = stats
        self.label = label
        self.enabled = enabled
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.started = time.perf_counter()

    def render(self, final=False):
        """Write the bar once."""
        if not self.enabled:
            return
        s = self.stats
        filled = int(_BAR_WIDTH * s.done / s.devices) if s.devices else _BAR_WIDTH
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        text = (f"{self.label} [{bar}] {s.done}/{s.devices} accepted={s.accepted} failed={s.failures} "
                f"{time.perf_counter() - self.started:.1f}s")
        end = "\n" if final or not self.tty else ""
        self.stream.write(("\r" if self.tty else "") + text + end)
        self.stream.flush()

    async def run(self):
        """Redraw until cancelled."""
        period = 0.2 if self.tty else 5.0
        while True:
            await asyncio.sleep(period)
            self.render()


# ---------------------------------------------------------------------------------------------
# Running devices
# ---------------------------------------------------------------------------------------------

def _record(stats, outcome, model_ok):
    stats.done += 1
    stats.restarts += outcome.restarts
    stats.turned_away += turned_away(outcome)
    stats.update_latencies.extend(outcome.latencies("updateModel"))
    if outcome.iteration:
        stats.server_iterations.add(outcome.iteration)
    if outcome.finished:
        stats.finished += 1
    elif outcome.accepted:
        stats.accepted += 1
    if model_ok is False:
        stats.mismatched += 1


def _record_failure(stats, exc):
    stats.done += 1
    stats.failures += 1
    outcome = getattr(exc, "outcome", None)
    if outcome is not None:
        stats.restarts += outcome.restarts
        stats.turned_away += turned_away(outcome)
        stats.update_latencies.extend(outcome.latencies("updateModel"))
    if len(stats.errors) < 5:
        stats.errors.append(f"{type(exc).__name__}: {exc}")


async def run_device(device, opts, stats):
    """One device's iteration; the outcome's model is checked then dropped at once to bound memory."""
    probe = {}
    check = not (opts.no_check or opts.quant or opts.compress or opts.no_fetch_model or opts.encrypt in UNCHECKED)

    def train(features, _plan):
        if check:
            probe.update(make_probe(features, opts.delta))
        return {name: value + np.float32(opts.delta) for name, value in features.items()}, 0.0, 0.0

    try:
        outcome = await device.run_iteration(train, fetch_model=not opts.no_fetch_model)
    except Exception as exc:  # noqa: BLE001 - counted and reported, never silent
        _record_failure(stats, exc)
        return
    if outcome.dropped:
        stats.dropped += 1
        stats.done += 1
        return
    model_ok = check_model(outcome.model, probe, opts.delta) if check and outcome.accepted else None
    outcome.model = None
    _record(stats, outcome, model_ok)


def _identities(opts, index, token):
    """One signing identity per device under --equip-ca (their fl_ids are then the certificates' hashes)."""
    if not opts.equip_ca:
        return [None] * opts.devices
    from cryptography.hazmat.primitives.asymmetric import rsa

    from mindspore_federated.client.identity import load_equip_ca, mint_identity

    cert, key = load_equip_ca(*opts.equip_ca)
    shared = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # one attestation key for all
    return [mint_identity(cert, key, f"sim-{token}-{index}-{i}", attestation_key=shared)
            for i in range(opts.devices)]


def _make_devices(opts, index, sessions, limiter, policy, token):
    compress = (CompressType.QUANT,) if opts.quant or opts.compress else ()
    # the cipher rounds wait for the other devices: none may wait for a slot held by one that waits
    limiter = None if opts.encrypt in PAIRWISE else limiter
    identities = _identities(opts, index, token)
    return [Device(opts.servers, opts.fl_name, fl_id=None if ident else f"sim-{token}-{index}-{i}",
                   data_size=opts.data_size, url_prefix=opts.url_prefix, session=sessions[i % len(sessions)],
                   limiter=limiter, policy=policy, download_compress_types=compress,
                   file_identifier=opts.file_identifier, upload_compress=opts.compress, identity=ident,
                   drop_at=opts.drop_at if i < opts.dropouts else None, dp_noise=opts.encrypt == "DP_ENCRYPT")
            for i, ident in enumerate(identities)]


async def run_one_iteration(opts, index, sessions, limiter, stderr, token):
    """All devices of one simulator iteration; returns its IterationStats."""
    stats = IterationStats(index=index, devices=opts.devices)
    devices = _make_devices(opts, index, sessions, limiter, _policy(opts), token)
    progress = Progress(stderr, stats, f"iteration {index}/{opts.iterations}", enabled=not opts.no_progress)
    painter = asyncio.ensure_future(progress.run())
    started = time.perf_counter()
    try:
        await asyncio.gather(*(run_device(d, opts, stats) for d in devices))
    finally:
        stats.wall = time.perf_counter() - started
        painter.cancel()
        await asyncio.gather(painter, return_exceptions=True)
    progress.render(final=True)
    return stats


def _open_sessions(opts):
    per_session = max(1, math.ceil(opts.concurrency / opts.sessions))
    tls = {} if not opts.ca_file else {"ssl": https_context(opts.ca_file, opts.crl_file)}
    return [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=per_session, limit_per_host=0, **tls))
            for _ in range(opts.sessions)]


async def simulate(opts, stdout=None, stderr=None):
    """Run every iteration, print one summary line each; returns the process exit code."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    sessions = _open_sessions(opts)
    limiter = asyncio.Semaphore(opts.concurrency)
    token = uuid.uuid4().hex[:8]
    code = EXIT_OK
    warned = False
    try:
        for index in range(1, opts.iterations + 1):
            stats = await run_one_iteration(opts, index, sessions, limiter, stderr, token)
            print(summary_line(stats), file=stdout, flush=True)
            for error in stats.errors:
                print(f"  error: {error}", file=stderr, flush=True)
            warning = over_admission_warning(stats.turned_away, stats.devices)
            if warning and not warned:
                print(warning, file=stderr, flush=True)
                warned = True
            code = code if stats.ok else EXIT_FAILED
            if stats.finished:
                print(f"the server's training job is disabled or finished (iteration {index})", file=stderr)
                break
    finally:
        await asyncio.gather(*(s.close() for s in sessions))
    return code


def _runner():
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def main(argv=None):
    """CLI entry point; returns the exit code (0 success, 1 failures or wrong models, 130 interrupted)."""
    opts = parse_args(argv)
    opts.servers = [s for s in opts.servers.split(",") if s.strip()]
    try:
        with _runner() as runner:
            return runner.run(simulate(opts))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
