"""Start the Scheduler (REST management plane) in the background.

Usage:  python run_sched.py --yaml_config yamls/lenet.yaml --scheduler_manage_address 127.0.0.1:11202
Expected output:  Scheduler started successfully. pid=1234 127.0.0.1:11202
Then:   curl http://127.0.0.1:11202/state
"""
import os
import sys

from mindspore_federated.launch import launch_scheduler

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    sys.exit(launch_scheduler(default_yaml=os.path.join(HERE, "yamls", "lenet.yaml")))
