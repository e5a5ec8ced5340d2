"""Stop this cluster's scheduler and servers gracefully (found through what they registered in Redis).

Usage (seed 000):  python finish_cloud.py --redis_port=23456
Usage (seed 001):  python finish_cloud.py --scheduler_port=6667
    stops the cluster whose scheduler was started with --scheduler_port=6667; the Redis holding the registry
    is --redis_address / --redis_port if given, else distributed_cache.address of --yaml_config (default
    yamls/lenet.yaml, the file run_sched.py and run_server.py use by default).
Expected output, one line per process:  killed 1234
"""
import os
import sys

from mindspore_federated.tools.finish_cloud import main

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    sys.exit(main(default_yaml=os.path.join(HERE, "yamls", "lenet.yaml")))
