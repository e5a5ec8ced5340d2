"""Hybrid training in one command: a private redis-server, a scheduler, 2 servers (HYBRID_TRAINING), 10
simulated phones (LeNet5, non-IID digits) and one MindSpore worker refining each iteration's device aggregate on
held-out digits; the same as `./build.sh run --mode hybrid`. Extra flags go to mindspore_federated.local.

    python example/hybrid_lenet/run.py [--iterations 10] [--devices 10] [--servers 2] [--worker_steps 8]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from mindspore_federated.local import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--mode", "hybrid", *sys.argv[1:]]))
