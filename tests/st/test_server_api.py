"""Python API contract of FLServerJob: start-up errors with the reference's texts, cheap fork-safe import."""
import multiprocessing
import subprocess
import sys

import numpy as np
import pytest

from mindspore_federated import FeatureMap, FLServerJob
from tests.utils.cluster import start_server, write_yaml
from tests.utils.multi import ENTRY
from tests.utils.redis_server import free_port


def _run_job(yaml_path, fm, queue):
    import os

    try:
        ckpt = os.path.join(os.path.dirname(yaml_path), "ckpt_failing_job")
        FLServerJob(yaml_path, f"127.0.0.1:{free_port()}", checkpoint_dir=ckpt).run(fm)
        queue.put(("returned", ""))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        queue.put((type(exc).__name__, str(exc)))


def run_expecting_error(yaml_path, fm, timeout=30):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run_job, args=(yaml_path, fm, queue))
    proc.start()
    try:
        kind, message = queue.get(timeout=timeout)
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
    return kind, message


def fm_of(**arrays):
    fm = FeatureMap()
    for name, arr in arrays.items():
        fm.add_feature(name, arr)
    return fm


@pytest.mark.parametrize("local, expected", [
    ({"w1": np.zeros(6, np.float32), "b1": np.zeros(3, np.float32)},
     "The features are inconsistent with that declared in distributed cache: cannot find feature w1"),
    ({"w1": np.zeros(6, np.float32)},
     "The number 1 of local features != the number 3 declared in the the distributed cache"),
    ({"w1": np.zeros(12, np.float32), "b1": np.zeros(3, np.float32), "frozen": np.zeros(4, np.float32)},
     None),
])
def test_model_mismatch_fails_start_with_reference_text(tmp_path, redis_server, fl_name, procs, local, expected):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name)
    start_server(procs, yaml_path, tmp_path / "first", entry=ENTRY)
    if expected is None:  # same names, wrong size of w1 (frozen keeps require_aggr=True -> size error first)
        expected = "The feature size 48 of local != that 24 declared in the distributed cache"
    if "cannot find feature" in expected:
        local = {"zz": np.zeros(6, np.float32), "b1": np.zeros(3, np.float32), "frozen": np.zeros(4, np.float32)}
        expected = expected.replace("w1", "zz")
    kind, message = run_expecting_error(yaml_path, fm_of(**local))
    assert kind in ("RuntimeError", "FederatedError")
    assert expected in message


def test_require_aggr_mismatch(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name)
    start_server(procs, yaml_path, tmp_path / "first", entry=ENTRY)
    fm = fm_of(w1=np.zeros(6, np.float32), b1=np.zeros(3, np.float32), frozen=np.zeros(4, np.float32))
    _, message = run_expecting_error(yaml_path, fm)
    assert "The feature require_aggr 1 of local != that 0 declared in the distributed cache" in message


def test_unreachable_redis_fails_within_deadline(tmp_path, fl_name):
    yaml_path = write_yaml(tmp_path, f"127.0.0.1:{free_port()}", fl_name)
    kind, message = run_expecting_error(yaml_path, fm_of(w=np.zeros(2, np.float32)), timeout=30)
    assert "Sync instance info with distributed cache failed" in message


def test_bad_yaml_is_runtime_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("fl_name: x\n")
    with pytest.raises(RuntimeError) as info:
        FLServerJob(str(path), "127.0.0.1:6666").run(fm_of(w=np.zeros(2, np.float32)))
    assert "The parameter 'fl_iteration_num' is missing" in str(info.value)


def test_import_is_cheap_and_fork_safe():
    code = ("import sys, threading, time; t=time.perf_counter(); import mindspore_federated as m; "
            "from mindspore_federated import FLServerJob, FeatureMap, Callback, SSLConfig, FlSchedulerJob; "
            "assert threading.active_count() == 1, threading.enumerate(); "
            "assert 'mindspore' not in sys.modules and 'redis' not in sys.modules; "
            "print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert float(out.stdout) < 1.0


def test_ssl_config_submodule_path():
    from mindspore_federated import SSLConfig
    from mindspore_federated.startup.ssl_config import SSLConfig as Same

    assert SSLConfig is Same
    cfg = SSLConfig("a", client_password="b")
    assert (cfg.server_password, cfg.client_password) == ("a", "b")
