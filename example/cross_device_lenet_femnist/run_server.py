"""Start N FL servers on consecutive HTTP ports in the background (one log folder each).

Usage:  python run_server.py --yaml_config yamls/lenet.yaml --local_server_num 2 \
            --http_server_address 127.0.0.1:6666 --tcp_server_ip 127.0.0.1 --checkpoint_dir ./fl_ckpt/
Seed-001 style works too:  python run_server.py --scheduler_ip 127.0.0.1 --fl_server_port 6668 \
            --server_num 4 --start_fl_job_threshold 8 --config_file_path $PWD/config.json
Expected output, one line per server:
    Server started successfully. pid=1234 http=127.0.0.1:6666 tcp=127.0.0.1:40001 node=...
"""
import os
import sys

from mindspore_federated.launch import launch_servers

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    sys.exit(launch_servers(default_yaml=os.path.join(HERE, "yamls", "lenet.yaml")))
