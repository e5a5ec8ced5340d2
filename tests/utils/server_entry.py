"""Test entry: a server with a small custom model (one require_aggr=False feature) and a printing callback."""
import argparse
import sys

import numpy as np

from mindspore_federated import Callback, FeatureMap, FLServerJob


class PrintingCallback(Callback):
    """Prints one line per hook so tests can follow the server."""

    def after_started(self):
        print("CALLBACK after_started", flush=True)

    def before_stopped(self):
        print("CALLBACK before_stopped", flush=True)

    def on_iteration_end(self, context):
        print(f"CALLBACK iteration_end {context.iteration_num} valid={context.iteration_valid} "
              f"ckpt={context.checkpoint_file}", flush=True)


def small_feature_map():
    fm = FeatureMap()
    fm.add_feature("w1", np.arange(6, dtype=np.float32).reshape(2, 3))
    fm.add_feature("b1", np.zeros(3, np.float32))
    fm.add_feature("frozen", np.full(4, 7.0, np.float32), require_aggr=False)
    return fm


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--yaml_config", required=True)
    parser.add_argument("--http_server_address", required=True)
    parser.add_argument("--checkpoint_dir", default="./fl_ckpt/")
    parser.add_argument("--tcp_server_ip", default="127.0.0.1")
    args = parser.parse_args()
    FLServerJob(args.yaml_config, args.http_server_address, args.tcp_server_ip, args.checkpoint_dir).run(
        small_feature_map(), PrintingCallback())
    return 0


if __name__ == "__main__":
    sys.exit(main())
