"""Servers on separate hosts: Redis, the scheduler, three servers and the devices each in their own network
namespace on a private bridge (10.77.0.0/24); one server's link is cut mid-iteration (ip link down: no RST,
no ICMP) and the cluster drops it like a dead peer and trains on, losing at most that iteration."""
import asyncio
import shutil
import time

import numpy as np
import pytest
import redis

from mindspore_federated.client.device import Device, RetryPolicy
from mindspore_federated.state.keys import Keys
from tests.utils.cluster import call, health, start_job, update, wait_model, write_yaml
from tests.utils.multi import ENTRY
from tests.utils.netns import NamespaceThread, Topology, netns_unavailable
from tests.utils.wait import wait_for

SUCCEED = 200
HTTP_PORT = 6666
DEVICES = 3
POLICY = RetryPolicy(http_timeout=3.0, retry_delay=0.2, max_retry_delay=1.0, step_timeout=60.0,
                     max_restart_wait=5.0, iteration_timeout=90.0)


@pytest.fixture
def net():
    reason = netns_unavailable()
    if reason:
        pytest.skip(f"network namespaces unavailable: {reason}")
    topo = Topology()
    try:
        yield topo.open()
    finally:
        topo.close()


def _train(d):
    def train(features, _plan):
        return {k: np.ravel(features[k]).astype(np.float32) + (d + 1) for k in ("w1", "b1")}
    return train


async def _sdk_iteration(servers, fl_name, iteration):
    """DEVICES SDK devices (data_size d+1, weights model+d+1) over every server; returns their outcomes."""
    devices = [Device(servers, fl_name, fl_id=f"it{iteration}d{d}", data_size=d + 1, policy=POLICY)
               for d in range(DEVICES)]
    try:
        return await asyncio.gather(*(dev.run_iteration(_train(d)) for d, dev in enumerate(devices)))
    finally:
        for dev in devices:
            await dev.close()


def _fedavg_shift():
    sizes = [d + 1 for d in range(DEVICES)]
    return sum(s * s for s in sizes) / sum(sizes)


def _start_cluster(net, procs, tmp_path, fl_name):
    redis_ip = net.add_host("redis", 2)
    sched_ip = net.add_host("sched", 3)
    server_ips = [net.add_host(f"s{i}", 10 + i) for i in range(3)]
    net.add_host("dev", 20)
    net.run(procs, "redis", "redis", shutil.which("redis-server"), "--bind", redis_ip, "--port", "6379",
            "--save", "", "--appendonly", "no", "--protected-mode", "no")
    dev = NamespaceThread(net.ns("dev"))
    r = redis.Redis(host=redis_ip, port=6379, decode_responses=True, socket_timeout=2)
    dev.call(wait_for, r.ping, 20, what="redis in its namespace")
    yaml_path = write_yaml(tmp_path, f"{redis_ip}:6379", fl_name, fl_iteration_num=20,
                           round={"start_fl_job_threshold": DEVICES, "start_fl_job_time_window": 60000,
                                  "update_model_time_window": 60000, "global_iteration_time_window": 120000})
    sched = f"{sched_ip}:6000"
    net.python(procs, "sched", "scheduler", "-m", "mindspore_federated.scheduler", "--yaml_config", yaml_path,
               "--scheduler_manage_address", sched).wait_ready(60)
    for i, ip in enumerate(server_ips):
        wd = tmp_path / f"srv{i}"
        wd.mkdir()
        net.python(procs, f"s{i}", f"server{i}", ENTRY[0], "--yaml_config", yaml_path,
                   "--http_server_address", f"{ip}:{HTTP_PORT}", "--tcp_server_ip", ip,
                   "--checkpoint_dir", str(wd / "fl_ckpt"), cwd=str(wd)).wait_ready(90)
    return dev, r, sched, [f"{ip}:{HTTP_PORT}" for ip in server_ips]


def test_a_cut_link_is_a_dead_peer_and_training_goes_on(net, procs, tmp_path, fl_name):
    dev, r, sched, servers = _start_cluster(net, procs, tmp_path, fl_name)
    try:
        urls = [f"http://{a}" for a in servers]
        keys = Keys(fl_name)
        ips = [a.split(":")[0] for a in servers]

        def status():
            return r.hgetall(keys.status(r.get(keys.instance_name)))

        def live_servers():
            code, body = call(sched, "state")
            return code == 200 and sorted(n["tcp_address"].split(":")[0] for n in body["nodes"]
                                          if n["role"] == "SERVER")

        assert dev.call(health, sched)["status"] == "ok"      # the scheduler's /healthz (k8s probes)
        assert len(dev.call(wait_for, lambda: len(live_servers() or []) == 3 and live_servers(), 30,
                            what="3 servers in /state")) == 3
        # iteration 1: SDK devices from the device namespace, spread over the three hosts
        outcomes = dev.call(asyncio.run, _sdk_iteration(urls, fl_name, 1))
        assert all(o.accepted and o.model_iteration == 2 for o in outcomes), outcomes
        model1 = dev.call(wait_model, servers[1], fl_name, 1).features
        np.testing.assert_allclose(model1["w1"], np.arange(6, dtype=np.float32) + _fedavg_shift(), rtol=1e-5)
        # iteration 2 is under way: every device started, the victim (server 2) holds one update
        for d in range(DEVICES):
            assert dev.call(start_job, servers[0], fl_name, f"x{d}", 2, 1).retcode == SUCCEED
        ones = {"w1": np.ones(6, np.float32), "b1": np.ones(3, np.float32)}
        assert dev.call(update, servers[2], fl_name, "x0", 2, ones).retcode == SUCCEED
        assert dev.call(update, servers[1], fl_name, "x1", 2, ones).retcode == SUCCEED
        net.cut("s2")
        cut = time.monotonic()
        dev.call(update, servers[0], fl_name, "x2", 2, ones)   # may be the round's last: all-reduce meets the cut
        # the cluster drops the silent server (heartbeat expiry or an unanswered ping) and moves on
        ended = dev.call(wait_for, lambda: (st := status()).get("iterationNum") == "3" and st, 90,
                         what="iteration 2 ended")
        ended_s = time.monotonic() - cut
        dev.call(wait_for, lambda: live_servers() == sorted(ips[:2]), 60, what="/state without the cut server")
        dropped_s = time.monotonic() - cut
        # iteration 3 trains on the survivors (the devices get the live servers, as from /state)
        before = dev.call(wait_model, servers[0], fl_name, 2).features
        outcomes = dev.call(asyncio.run, _sdk_iteration(urls[:2], fl_name, 3), timeout=180)
        assert all(o.accepted and o.model_iteration == 4 for o in outcomes), outcomes
        after = [dev.call(wait_model, a, fl_name, 3).features for a in servers[:2]]
        np.testing.assert_array_equal(after[0]["w1"], after[1]["w1"])
        np.testing.assert_allclose(after[0]["w1"], np.ravel(before["w1"]) + _fedavg_shift(), rtol=1e-5)
        print(f"cut link: iteration 2 ended {ended_s:.1f} s later (success={ended.get('lastIterationSuccess')!r}), "
              f"/state dropped the host after {dropped_s:.1f} s, iteration 3 trained on {len(after)} survivors")
    finally:
        r.close()
        dev.close()
