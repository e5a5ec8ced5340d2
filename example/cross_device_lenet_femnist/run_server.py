"""Start N FL servers on consecutive HTTP ports in the background (one log folder each).

Usage (seed 000):  python run_server.py --yaml_config yamls/lenet.yaml --local_server_num 2 \
            --http_server_address 127.0.0.1:6666 --tcp_server_ip 127.0.0.1 --checkpoint_dir ./fl_ckpt/
Usage (seed 001):  python run_server.py --scheduler_ip=127.0.0.1 --scheduler_port=6667 --fl_server_port=6668 \
            --server_num=4 --start_fl_job_threshold=8 --config_file_path=$PWD/config.json
    starts --local_server_num servers (default --server_num) on ports 6668, 6669, ...; --fl_name and
    --redis_address override the YAML; the node id comes from --node_id or $MS_NODE_ID (`<id>_<i>` for each of
    several servers), so a server restarted with the same id takes back its rank.
Expected output, one line per server:
    Server started successfully. pid=1234 http=127.0.0.1:6666 tcp=127.0.0.1:40001 node=...
"""
import os
import sys

from mindspore_federated.launch import launch_servers

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    sys.exit(launch_servers(default_yaml=os.path.join(HERE, "yamls", "lenet.yaml")))
