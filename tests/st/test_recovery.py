"""Disaster recovery with real processes: server SIGKILL + restart with its node id (MS_NODE_ID and --node_id),
whole-cluster SIGKILL + restart, Redis killed and restarted empty, Redis stopped for 5 s.

In every scenario a background Monitor polls Redis and every server for the whole test and checks that
iteration numbers never go backwards and that no iteration reported successful serves a wrong model; after the
fault, training runs to fl_iteration_num (CLUSTER_FINISH). Each test prints `RECOVERY <scenario> <seconds>`:
the time from the fault (the kill or stop, not the restart) to the next successful iteration; with
MSF_RECORD_RECOVERY=1 the lines also go to bench/results/recovery_times.txt."""
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import redis

from mindspore_federated.checkpoint import save_checkpoint
from mindspore_federated.client.messages import PlainTextReply
from mindspore_federated.errors import JOB_DISABLED, SAFEMODE
from mindspore_federated.state.keys import CLUSTER_STATE_NAMES, Keys
from tests.utils.cluster import (
    call,
    get_model,
    health,
    post,
    start_job,
    start_scheduler,
    start_server,
    update,
    write_yaml,
)
from tests.utils.multi import ENTRY, models_everywhere
from tests.utils.procs import REPO
from tests.utils.wait import wait_for

ONES = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
INITIAL_W1 = np.arange(6, dtype=np.float32)   # tests/utils/server_entry.py and small_model_ckpt()
INITIAL = "initial model"
ITERATIONS = 4
REDIS_LOSS_ITERATIONS, REDIS_LOSS_TOLERATED = 7, 1   # more iterations a Redis restart may cost
MONITOR_DEADLINE_S = 120.0
RESULTS_FILE = os.path.join(REPO, "bench", "results", "recovery_times.txt")


class Monitor(threading.Thread):
    """Polls Redis (status hash) and every server (/healthz, getModel) in the background and records:
    iteration numbers per source (any decrease is a violation), the outcome of each iteration (from the status
    hash and metrics.json; they must agree) and the model each server serves for each finished iteration."""

    def __init__(self, redis_port, fl_name, workdirs=(), interval=0.1, iterations=ITERATIONS):
        super().__init__(daemon=True)
        self.iterations = iterations   # fl_iteration_num of the cluster
        self.redis = redis.Redis(port=redis_port, decode_responses=True, socket_timeout=0.3,
                                 socket_connect_timeout=0.3)
        self.keys = Keys(fl_name)
        self.fl_name = fl_name
        self.workdirs = list(workdirs)
        self.interval = interval
        self.addresses = []            # the test keeps this list up to date (restarted servers)
        self.expected = {0: INITIAL}   # iteration -> the constant value of the model the test trained for it
        self.violations = []
        self.results = {}              # iteration -> True/False (success), from the status hash
        # iteration -> {constant value (or INITIAL) of the models served for it}
        self.served = {}
        self.last = {}                 # source -> last iteration number seen
        self.instance = None
        self.polls = 0
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def run(self):
        deadline = time.monotonic() + MONITOR_DEADLINE_S
        while not self._halt.is_set():
            if time.monotonic() > deadline:
                self._violate(f"monitor deadline of {MONITOR_DEADLINE_S}s passed")
                break
            self._poll_redis()
            for address in list(self.addresses):
                self._poll_server(address)
            self.polls += 1
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(timeout=10)
        assert not self.is_alive(), "monitor did not stop"
        # one last look from the caller's thread: what the checks below rest on was observed however little
        # CPU the background thread got on a busy machine
        self._poll_redis()
        for address in list(self.addresses):
            self._poll_server(address)
        self.redis.close()

    def _violate(self, text):
        with self._lock:
            self.violations.append(text)

    def _step(self, source, iteration):
        with self._lock:
            previous = self.last.get(source)
            if previous is not None and iteration < previous:
                self.violations.append(f"{source}: iteration went back from {previous} to {iteration}")
            self.last[source] = max(iteration, previous or 0)

    def poll_redis_now(self):
        """One Redis poll from the caller's thread (e.g. right after an iteration the test trained, so its
        outcome is seen even if Redis goes away before the next background poll)."""
        self._poll_redis()

    def _poll_redis(self):
        try:
            inst = self.redis.get(self.keys.instance_name)
            status = self.redis.hgetall(self.keys.status(inst)) if inst else {}
        except (redis.RedisError, OSError):
            return   # Redis down or stopped: nothing to see
        if not inst or "iterationNum" not in status:
            return   # lost and not yet re-created
        if self.instance is None:
            self.instance = inst
        elif inst != self.instance:
            self._violate(f"instance changed from {self.instance} to {inst} without /newInstance")
        iteration = int(status["iterationNum"])
        self._step("redis", iteration)
        if "lastIterationSuccess" in status and iteration > 1:
            self._result(iteration - 1, status["lastIterationSuccess"] == "1", "redis")

    def _result(self, iteration, success, source):
        with self._lock:
            known = self.results.setdefault(iteration, success)
        if known != success:
            self._violate(f"iteration {iteration}: {source} says success={success}, seen before: {known}")

    def _poll_server(self, address):
        try:
            with urllib.request.urlopen(f"http://{address}/healthz", timeout=1) as resp:
                iteration = json.loads(resp.read())["iteration"]
            status, body = post(address, "getModel", _get_model_body(self.fl_name, iteration - 1), timeout=1)
        except (urllib.error.URLError, OSError, ValueError):
            return   # restarting, killed or busy
        self._step(address, iteration)
        if status != 200 or iteration < 2:
            return
        from mindspore_federated.client import messages as m

        reply = m.parse_get_model(body)
        if getattr(reply, "retcode", None) != 200 or reply.iteration != iteration:
            return   # not ready, safe mode, or the iteration moved on between the two calls
        self._step(address, reply.iteration)
        w1 = reply.features["w1"].ravel()
        if np.array_equal(w1, INITIAL_W1):
            seen = INITIAL
        elif np.all(w1 == w1[0]):
            seen = float(w1[0])
        else:
            self._violate(f"{address}: model of iteration {iteration - 1} is not one the test trained: {w1}")
            return
        with self._lock:
            self.served.setdefault(iteration - 1, set()).add(seen)

    def metrics_results(self):
        """iteration -> success of every metrics.json line under the servers' working directories."""
        out = {}
        for workdir in self.workdirs:
            path = os.path.join(str(workdir), "metrics.json")
            if os.path.exists(path):
                with open(path, encoding="utf-8") as f:
                    for line in filter(str.strip, f):
                        item = json.loads(line)
                        out.setdefault(item["currentIteration"], []).append(item["iterationResult"] == "success")
        return out

    def verify(self):
        """Asserts the invariants over everything seen; returns the outcome of every iteration."""
        for iteration, outcomes in self.metrics_results().items():
            if len(outcomes) != 1:
                self._violate(f"iteration {iteration}: {len(outcomes)} metrics lines")
            for success in outcomes:
                self._result(iteration, success, "metrics.json")
        value = {0: self.expected[0]}
        for iteration in sorted(self.results):
            if iteration - 1 not in value:
                break
            if self.results[iteration]:
                if iteration not in self.expected:
                    self._violate(f"iteration {iteration} reported successful although the test did not train it "
                                  f"(served models: {sorted(self.served.get(iteration, ()), key=str)})")
                    break
                value[iteration] = self.expected[iteration]
            else:
                value[iteration] = value[iteration - 1]   # a failed iteration keeps the previous model
        for iteration, seen in sorted(self.served.items()):
            if iteration in value and seen != {value[iteration]}:
                self._violate(f"iteration {iteration} (success={self.results.get(iteration)}) served models "
                              f"{sorted(seen, key=str)}, expected {value[iteration]}")
        for iteration in self.expected:
            if iteration and self.results.get(iteration) is not True:
                self._violate(f"iteration {iteration} was trained but is not reported successful: "
                              f"{self.results.get(iteration)}")
        unseen = [source for source in ("redis", *self.addresses) if source not in self.last]
        assert not unseen, f"the monitor never observed {unseen}: the checks above would be vacuous"
        assert not self.violations, "\n".join(self.violations)
        return dict(self.results)


def _get_model_body(fl_name, iteration):
    from mindspore_federated.client import messages as m

    return m.build_get_model(fl_name, iteration)


def small_model_ckpt(path):
    """The model of tests/utils/server_entry.py (without its frozen feature) as a checkpoint, for servers
    started through `python -m mindspore_federated.server --model <ckpt>` (which take --node_id)."""
    save_checkpoint(str(path), {"w1": INITIAL_W1.reshape(2, 3), "b1": np.zeros(3, np.float32)})
    return str(path)


def as_device(request, timeout=10.0):
    """Sends a request the way a device does: a plain-text "not available" reply (safe mode, or a server
    whose Redis connection broke, e.g. the first use of a pooled connection after a Redis restart) is retried
    until the deadline. Returns (first flatbuffers reply, whether a "not available" reply came before it)."""
    unavailable = []

    def attempt():
        reply = request()
        if isinstance(reply, PlainTextReply):
            assert reply.text in (SAFEMODE, JOB_DISABLED), reply.text
            unavailable.append(reply.text)
            return None
        return reply
    reply = wait_for(attempt, timeout, interval=0.1, what="a flatbuffers reply")
    return reply, bool(unavailable)


class IterationLost(AssertionError):
    """The iteration the test was training ended (failed) under it."""


def train(monitor, addresses, fl_name, iteration, value, devices=2, prefix="d"):
    """One full iteration (startFLJob on one server, updateModel on the next) whose exact FedAvg is `value`:
    device d uploads value + (2d - devices + 1) with data size 1, so a model missing or double-counting an
    update differs. Returns once every server serves that model. Raises IterationLost if the iteration failed
    under the devices (a device refused because the iteration moved on, or the outcome recorded failed)."""
    monitor.expected[iteration] = value

    def check(answer, what):
        reply, retried = answer
        if reply.retcode == 200:
            return
        if any(health(a)["iteration"] > iteration for a in addresses):
            monitor.expected.pop(iteration)
            raise IterationLost(f"iteration {iteration} ended during {what}: {reply.reason}")
        if retried:   # the "not available" attempt may have been applied: the outcome decides below
            print(f"(ambiguous: {what} answered 'not available', then on retry: {reply.reason})")
            return
        raise AssertionError(f"{what}: {reply.reason}")
    for d in range(devices):
        fl_id = f"{prefix}{iteration}_{d}"
        check(as_device(lambda d=d, fl_id=fl_id: start_job(addresses[d % len(addresses)], fl_name, fl_id,
                                                           iteration, 1)),
              f"startFLJob {fl_id}")
    for d in range(devices):
        fl_id = f"{prefix}{iteration}_{d}"
        upload = {k: v * (value + 2 * d - devices + 1) for k, v in ONES.items()}
        check(as_device(lambda d=d, fl_id=fl_id, upload=upload: update(
                  addresses[(d + 1) % len(addresses)], fl_name, fl_id, iteration, upload)),
              f"updateModel {fl_id}")
    models = models_everywhere(addresses, fl_name, iteration, timeout=20)
    monitor.poll_redis_now()
    if monitor.results.get(iteration) is False:
        monitor.expected.pop(iteration)
        raise IterationLost(f"iteration {iteration} failed after every update was accepted")
    for m in models:
        assert m.iteration == iteration + 1
        np.testing.assert_array_equal(m.features["w1"].ravel(), np.full(6, value, np.float32))
    return models


def train_next(monitor, addresses, fl_name, value, tolerate_lost=0):
    """Trains the servers' current iteration; with `tolerate_lost` > 0 that many iterations may fail under
    the devices (who then start over in the next one). Returns (trained iteration, lost iterations)."""
    lost = []
    while True:
        iteration = wait_serving(addresses)
        try:
            train(monitor, addresses, fl_name, iteration, value, prefix=f"n{len(lost)}_")
            return iteration, lost
        except IterationLost:
            lost.append(iteration)
            if len(lost) > tolerate_lost:
                raise


def wait_serving(addresses, timeout=20.0):
    """Waits until every server reaches Redis and all are on the same iteration (a new one for none of them
    in the last poll); returns that iteration."""
    def ready():
        states = [health(a) for a in addresses]
        its = {h["iteration"] for h in states}
        return all(h["cache_ok"] for h in states) and len(its) == 1 and its.pop()
    return wait_for(ready, timeout, interval=0.05, what="every server serving the same iteration")


def finish_training(monitor, addresses, fl_name, value, scheduler_yaml=None, procs=None, tolerate_lost=0):
    """Trains the remaining iterations (iteration i trains the model value + i) up to fl_iteration_num (at
    most `tolerate_lost` of them may fail under the devices) and checks the instance is finished: its
    runningState maps to CLUSTER_FINISH, and with `scheduler_yaml` a real scheduler's /state says so.
    Returns the iterations lost."""
    lost = []
    iteration = wait_serving(addresses)
    while iteration <= monitor.iterations:
        try:
            train(monitor, addresses, fl_name, iteration, value + iteration)
        except IterationLost:
            lost.append(iteration)
            if len(lost) > tolerate_lost:
                raise
        iteration = wait_serving(addresses) if iteration < monitor.iterations else iteration + 1
    if scheduler_yaml is not None:
        _, sched = start_scheduler(procs, scheduler_yaml)
        state = wait_for(lambda: (r := call(sched, "state")[1]).get("cluster_state") == "CLUSTER_FINISH" and r,
                         10, what="CLUSTER_FINISH")
        assert len(state["nodes"]) == len(addresses)
    inst = monitor.redis.get(Keys(fl_name).instance_name)
    status = monitor.redis.hgetall(Keys(fl_name).status(inst))
    assert CLUSTER_STATE_NAMES[int(status["runningState"])] == "CLUSTER_FINISH"
    assert int(status["iterationNum"]) == monitor.iterations + 1
    for address in addresses:   # Finish: only getModel is served, with the last model
        body = post(address, "startFLJob", _start_body(fl_name, monitor.iterations + 1))[1]
        assert body == b"The server's training job is disabled or finished."
        final = get_model(address, fl_name, monitor.iterations)
        np.testing.assert_array_equal(final.features["w1"].ravel(),
                                      np.full(6, monitor.expected[max(monitor.expected)], np.float32))
    return lost


def _start_body(fl_name, iteration):
    from mindspore_federated.client import messages as m

    return m.build_start_fl_job(fl_name, "late", iteration, 1)


def record(scenario, seconds):
    """Prints `RECOVERY <scenario> <seconds>`; with MSF_RECORD_RECOVERY=1 also (re)writes its line in
    bench/results/recovery_times.txt."""
    line = f"RECOVERY {scenario} {seconds:.2f}"
    print(f"\n{line}")
    if os.environ.get("MSF_RECORD_RECOVERY") != "1":
        return
    os.makedirs(os.path.dirname(RESULTS_FILE), exist_ok=True)
    lines = []
    if os.path.exists(RESULTS_FILE):
        with open(RESULTS_FILE, encoding="utf-8") as f:
            lines = [x.rstrip("\n") for x in f if x.strip() and not x.startswith(f"RECOVERY {scenario} ")]
    with open(RESULTS_FILE, "w", encoding="utf-8") as f:
        f.write("\n".join(sorted(lines + [line])) + "\n")


def make_yaml(tmp_path, redis_server, fl_name, iterations=ITERATIONS):
    return write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 2},
                      fl_iteration_num=iterations)


def _server_sigkill_restart(tmp_path, redis_server, fl_name, procs, scenario, start, at_once=False):
    """Iteration 2 is under way (both devices started, one update held by b) when b is SIGKILLed; b is
    restarted with the same node id and takes its rank back; training then runs to the end.
    `start(name, workdir, node_id)` starts a server (node_id None: a generated one). `at_once`: b is restarted
    right away, racing the survivor's check for exited servers; iteration 2 must fail either way."""
    yaml_path = make_yaml(tmp_path, redis_server, fl_name)
    monitor = Monitor(redis_server.port, fl_name, [tmp_path / "a", tmp_path / "b"])
    monitor.start()
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    try:
        _, a = start(yaml_path, "a", tmp_path / "a", None)
        pb, b = start(yaml_path, "b", tmp_path / "b", "node-b")
        monitor.addresses[:] = [a, b]
        train(monitor, [a, b], fl_name, 1, 1.0)
        rank_before = client.hget(Keys(fl_name).ranks, "node-b")
        assert rank_before is not None
        for d in range(2):
            assert start_job(a, fl_name, f"k{d}", 2, 1).retcode == 200
        assert update(b, fl_name, "k0", 2, {k: v * 9 for k, v in ONES.items()}).retcode == 200
        pb.kill()
        t0 = time.monotonic()
        monitor.addresses[:] = [a]
        # the update b held died with it: the survivor fails iteration 2 (it must never succeed without it).
        # b is restarted once that happened, or (at_once) before: then the restarted b, finding updates
        # counted under its node id, fails the iteration itself, whoever notices first
        if not at_once:
            wait_for(lambda: health(a)["iteration"] == 3, 15, what="iteration 2 failed after the SIGKILL")
        pb2, b2 = start(yaml_path, "b2", tmp_path / "b", "node-b")
        wait_for(lambda: health(a)["iteration"] == 3, 15, what="iteration 2 failed after the SIGKILL")
        monitor.poll_redis_now()   # record iteration 2's outcome before iteration 3 is trained
        monitor.addresses[:] = [a, b2]
        assert pb2.wait_ready().split("node=")[1] == "node-b"
        assert client.hget(Keys(fl_name).ranks, "node-b") == rank_before
        r = update(a, fl_name, "k1", 2, {k: v * 3 for k, v in ONES.items()})
        assert r.retcode != 200   # its iteration is over
        assert wait_serving([a, b2]) == 3
        train(monitor, [a, b2], fl_name, 3, 2.0)
        record(scenario, time.monotonic() - t0)
        finish_training(monitor, [a, b2], fl_name, 10.0)
    finally:
        monitor.stop()
        client.close()
    results = monitor.verify()
    assert results[1] is True and results[2] is False


def test_server_sigkill_restart_with_ms_node_id(tmp_path, redis_server, fl_name, procs):
    def start(yaml_path, name, workdir, node_id):
        env = {"MS_NODE_ID": node_id} if node_id else None
        return start_server(procs, yaml_path, workdir, name=name, entry=ENTRY, env=env)
    _server_sigkill_restart(tmp_path, redis_server, fl_name, procs, "server_sigkill_restart_ms_node_id", start)


def test_server_sigkill_and_immediate_restart_never_hides_the_lost_update(tmp_path, redis_server, fl_name, procs):
    def start(yaml_path, name, workdir, node_id):
        env = {"MS_NODE_ID": node_id} if node_id else None
        return start_server(procs, yaml_path, workdir, name=name, entry=ENTRY, env=env)
    _server_sigkill_restart(tmp_path, redis_server, fl_name, procs, "server_sigkill_immediate_restart", start,
                            at_once=True)


def test_server_sigkill_restart_with_node_id_flag(tmp_path, redis_server, fl_name, procs):
    ckpt = small_model_ckpt(tmp_path / "small.ckpt")

    def start(yaml_path, name, workdir, node_id):
        extra = ("--node_id", node_id) if node_id else ()
        return start_server(procs, yaml_path, workdir, name=name, model=ckpt, extra=extra)
    _server_sigkill_restart(tmp_path, redis_server, fl_name, procs, "server_sigkill_restart_node_id_flag", start)


def test_whole_cluster_sigkill_and_restart(tmp_path, redis_server, fl_name, procs):
    yaml_path = make_yaml(tmp_path, redis_server, fl_name)
    shared = tmp_path / "shared"
    monitor = Monitor(redis_server.port, fl_name, [shared])
    monitor.start()
    try:
        servers = [start_server(procs, yaml_path, shared, name=f"s{i}", entry=ENTRY) for i in range(2)]
        monitor.addresses[:] = [a for _, a in servers]
        train(monitor, monitor.addresses, fl_name, 1, 3.0)
        wait_for(lambda: list((shared / "fl_ckpt").glob("*.ckpt")), 10, what="checkpoint written")
        assert start_job(monitor.addresses[0], fl_name, "lost", 2, 1).retcode == 200   # iteration 2 under way
        for proc, _ in servers:
            proc.kill()
        t0 = time.monotonic()
        monitor.addresses[:] = []
        servers = [start_server(procs, yaml_path, shared, name=f"r{i}", entry=ENTRY) for i in range(2)]
        addresses = [a for _, a in servers]
        monitor.addresses[:] = addresses
        # the cluster resumes at iteration 2 with the model of iteration 1 (from the checkpoint)
        r = start_job(addresses[0], fl_name, "after", 2, 1)
        assert r.retcode == 200 and r.iteration == 2
        np.testing.assert_array_equal(r.features["w1"].ravel(), np.full(6, 3.0, np.float32))
        monitor.expected[2] = 4.0
        for fl_id in ("lost", "after"):   # the device started before the crash completes the iteration
            assert update(addresses[1], fl_name, fl_id, 2, {k: v * 4 for k, v in ONES.items()}).retcode == 200
        for m in models_everywhere(addresses, fl_name, 2, timeout=20):
            np.testing.assert_array_equal(m.features["w1"].ravel(), np.full(6, 4.0, np.float32))
        monitor.poll_redis_now()
        record("whole_cluster_sigkill_restart", time.monotonic() - t0)
        finish_training(monitor, addresses, fl_name, 20.0, scheduler_yaml=yaml_path, procs=procs)
    finally:
        monitor.stop()
    results = monitor.verify()
    assert results[1] is True and results[2] is True


def test_redis_killed_and_restarted_empty(tmp_path, fresh_redis, fl_name, procs):
    yaml_path = make_yaml(tmp_path, fresh_redis, fl_name, iterations=REDIS_LOSS_ITERATIONS)
    workdirs = [tmp_path / "s0", tmp_path / "s1"]
    monitor = Monitor(fresh_redis.port, fl_name, workdirs, iterations=REDIS_LOSS_ITERATIONS)
    monitor.start()
    try:
        servers = [start_server(procs, yaml_path, w, name=w.name, entry=ENTRY) for w in workdirs]
        addresses = monitor.addresses[:] = [a for _, a in servers]
        train(monitor, addresses, fl_name, 1, 4.0)
        assert start_job(addresses[0], fl_name, "lost", 2, 1).retcode == 200   # iteration 2 under way
        fresh_redis.kill()
        t0 = time.monotonic()
        fresh_redis.start()
        # iteration 2 fails (its state is gone), the counter continues at 3, the model is kept
        wait_for(lambda: wait_serving(addresses) > 2, 20, what="iteration 2 failed")
        for address in addresses:   # the failed iteration kept the model of iteration 1
            np.testing.assert_array_equal(get_model(address, fl_name, 2).features["w1"].ravel(),
                                          np.full(6, 4.0, np.float32))
        # a server drops its idle pooled connections at its first connection error, but the command that hit
        # it (on each server) still fails: rarely (1 run in 10 here) that costs one more iteration
        iteration, lost = train_next(monitor, addresses, fl_name, 5.0, tolerate_lost=REDIS_LOSS_TOLERATED)
        record("redis_sigkill_restart_empty", time.monotonic() - t0)
        assert iteration == 3 + len(lost), (iteration, lost)
        lost += finish_training(monitor, addresses, fl_name, 30.0, tolerate_lost=REDIS_LOSS_TOLERATED - len(lost))
        if lost:
            print(f"(iterations lost after the Redis restart besides iteration 2: {lost})")
    finally:
        monitor.stop()
    results = monitor.verify()
    assert results[1] is True and results[2] is False


def test_redis_stopped_for_five_seconds(tmp_path, fresh_redis, fl_name, procs):
    yaml_path = make_yaml(tmp_path, fresh_redis, fl_name)
    workdirs = [tmp_path / "s0", tmp_path / "s1"]
    monitor = Monitor(fresh_redis.port, fl_name, workdirs)
    monitor.start()
    try:
        servers = [start_server(procs, yaml_path, w, name=w.name, entry=ENTRY) for w in workdirs]
        addresses = monitor.addresses[:] = [a for _, a in servers]
        train(monitor, addresses, fl_name, 1, 5.0)
        fresh_redis.kill(signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            # safe mode once a server notices: getModel is still served from memory, the other rounds
            # answer the plain text (without touching Redis, so nothing is queued inside the stopped Redis)
            for address in addresses:
                wait_for(lambda a=address: not health(a)["cache_ok"], 5, what=f"{address} noticing the outage")
                assert post(address, "startFLJob", _start_body(fl_name, 2))[1] == b"The cluster is in safemode."
                assert get_model(address, fl_name, 1).retcode == 200
            stopped_until = t0 + 5
            while time.monotonic() < stopped_until:   # the 5 s outage itself (not a readiness wait)
                for address in addresses:
                    assert get_model(address, fl_name, 1).retcode == 200
                time.sleep(min(0.5, max(0.0, stopped_until - time.monotonic())))
        finally:
            fresh_redis.kill(signal.SIGCONT)
        iteration = wait_serving(addresses)
        assert iteration == 2
        train(monitor, addresses, fl_name, iteration, 6.0, prefix="back")
        record("redis_sigstop_5s", time.monotonic() - t0)
        finish_training(monitor, addresses, fl_name, 40.0)
    finally:
        monitor.stop()
    results = monitor.verify()
    assert results[1] is True


def test_recovery_file_restores_node_id_and_rank(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, round={"start_fl_job_threshold": 1})
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"recovery": {"storage_type": 1, "storge_file_path": str(tmp_path / "rec.json")}}))
    extra = ("--config_file_path", str(config))
    _, a = start_server(procs, yaml_path, tmp_path / "a", name="a", extra=extra)
    pb, b = start_server(procs, yaml_path, tmp_path / "b", name="b", extra=extra)
    port_b = b.rpartition(":")[2]
    saved = json.loads((tmp_path / f"rec.json.{port_b}").read_text())
    assert saved["rank"] == 1 and saved["fl_name"] == fl_name
    pb.kill()
    pb2, _ = start_server(procs, yaml_path, tmp_path / "b", name="b2", extra=extra, http_port=int(port_b))
    assert f"node={saved['node_id']}" in pb2.wait_ready()
    client = redis.Redis(port=redis_server.port)
    assert int(client.hget(f"ms_fl:{{{fl_name}}}:ranks:Hash", saved["node_id"])) == 1
    client.close()
