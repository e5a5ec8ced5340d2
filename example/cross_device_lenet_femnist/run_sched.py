"""Start the Scheduler (REST management plane) in the background.

Usage (seed 000):  python run_sched.py --yaml_config yamls/lenet.yaml --scheduler_manage_address 127.0.0.1:11202
Usage (seed 001):  python run_sched.py --scheduler_ip=127.0.0.1 --scheduler_port=6667 --fl_server_port=6668 \
            --server_num=4 --scheduler_manage_port=11202 --config_file_path=$PWD/config.json
    (--fl_name and --redis_address override the YAML, default yamls/lenet.yaml; --scheduler_port is recorded
    so that `finish_cloud.py --scheduler_port=6667` finds the cluster)
Expected output:  Scheduler started successfully. pid=1234 127.0.0.1:11202
Then:   curl http://127.0.0.1:11202/state
"""
import os
import sys

from mindspore_federated.launch import launch_scheduler

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    sys.exit(launch_scheduler(default_yaml=os.path.join(HERE, "yamls", "lenet.yaml")))
