"""Cross-silo federated learning in one command: a private redis-server, one server (FEDERATED_LEARNING) and
three silos (MindSpore LeNet5, non-IID digits: 4 classes each) syncing through FederatedLearningManager; then
each silo trained alone for the same steps. Prints the federated accuracy per iteration and the baselines.

    python example/cross_silo_lenet/run.py [--silos 3] [--fl_iteration_num 20] [--sync_frequency 5]
"""
import argparse
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from mindspore_federated.local import Child, free_port, start_redis, write_config  # noqa: E402
from mindspore_federated.local import parse_args as local_args  # noqa: E402

LINE = re.compile(r"^ITERATION (\d+) silo (\d+) accuracy ([0-9.]+)")
FINISH_TIMEOUT_S = 1800


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--silos", type=int, default=3)
    p.add_argument("--fl_iteration_num", type=int, default=20)
    p.add_argument("--sync_frequency", type=int, default=5)
    p.add_argument("--workdir", default=None)
    return p.parse_args(argv)


def write_yaml(workdir, redis_address, silos, iterations):
    """The cluster YAML of local.py's cluster: FEDERATED_LEARNING, one startFLJob per silo per iteration."""
    cluster = local_args(["--fl_name", "CrossSiloLenet", "--devices", str(silos), "--iterations",
                          str(iterations + 1)])
    return write_config(workdir, redis_address, cluster)


def run_silos(args, workdir, extra, tag):
    """Runs every silo to its end; returns {silo: [accuracy per iteration]}."""
    silos = [Child(f"{tag}{k}", [sys.executable, os.path.join(HERE, "run_silo.py"), "--silo", str(k), "--silos",
                                 str(args.silos), "--fl_iteration_num", str(args.fl_iteration_num),
                                 "--sync_frequency", str(args.sync_frequency), *extra],
                   os.path.join(workdir, f"{tag}{k}.log"), workdir) for k in range(args.silos)]
    try:
        for child in silos:
            child.proc.wait(FINISH_TIMEOUT_S)
    finally:
        for child in silos:
            child.stop()
    curves = {}
    for k, child in enumerate(silos):
        with open(child.log_path, encoding="utf-8", errors="replace") as f:
            curves[k] = [float(m.group(3)) for m in map(LINE.match, f) if m]
        if len(curves[k]) != args.fl_iteration_num:
            raise RuntimeError(f"{tag}{k} did not finish (log {child.log_path})")
    return curves


def main(argv=None):
    args = parse_args(argv)
    workdir = os.path.abspath(args.workdir or os.path.join("logs", time.strftime("cross_silo_%Y%m%d_%H%M%S")))
    os.makedirs(workdir, exist_ok=True)
    children = []
    try:
        redis_child, redis_address = start_redis(workdir)
        children.append(redis_child)
        yaml_path = write_yaml(workdir, redis_address, args.silos, args.fl_iteration_num)
        address = f"127.0.0.1:{free_port()}"
        server = Child("server", [sys.executable, "-m", "mindspore_federated.server", "--yaml_config", yaml_path,
                                  "--http_server_address", address, "--checkpoint_dir",
                                  os.path.join(workdir, "fl_ckpt"), "--model", "lenet"],
                       os.path.join(workdir, "server.log"), workdir)
        children.append(server)
        server.wait_ready()
        print(f"server     http://{address}; {args.silos} silos, {args.sync_frequency} local steps per iteration",
              flush=True)
        federated = run_silos(args, workdir, ["--yaml_config", yaml_path, "--http_server_address", address],
                              "silo")
    finally:
        for child in reversed(children):
            child.stop()
    for i in range(args.fl_iteration_num):
        print(f"iteration {i + 1:2d}  federated accuracy {federated[0][i]:.3f}", flush=True)
    alone = run_silos(args, workdir, ["--alone"], "alone")
    best_alone = max(curve[-1] for curve in alone.values())
    print("alone      " + ", ".join(f"silo {k} {c[-1]:.3f}" for k, c in alone.items()), flush=True)
    print(f"result     federated {federated[0][-1]:.3f} vs best single silo {best_alone:.3f}; logs in {workdir}",
          flush=True)
    return 0 if federated[0][-1] > best_alone else 1


if __name__ == "__main__":
    sys.exit(main())
