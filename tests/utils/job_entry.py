"""Test entry: a server started through the public API, `FLServerJob(...).run(feature_map)`, where the feature
map is chosen on the command line (none, empty, or a four-feature model declared in non-sorted order)."""
import argparse
import os
import sys

import numpy as np

JOB_ENTRY = (os.path.abspath(__file__),)
# name -> (shape, require_aggr), declared in this (non-sorted) order
FOUR_FEATURES = {"feature_conv": ((2, 3), True), "feature_bn": ((3,), True), "feature_bn2": ((3,), True),
                 "feature_fc": ((4,), True)}


def four_feature_map():
    from mindspore_federated import FeatureMap

    fm = FeatureMap()
    for i, (name, (shape, require_aggr)) in enumerate(FOUR_FEATURES.items()):
        fm.add_feature(name, np.full(shape, float(i), np.float32), require_aggr)
    return fm


def feature_map_of(kind):
    from mindspore_federated import FeatureMap

    return {"none": lambda: None, "empty": FeatureMap, "four": four_feature_map}[kind]()


def main():
    from mindspore_federated import FLServerJob

    parser = argparse.ArgumentParser()
    parser.add_argument("--yaml_config", required=True)
    parser.add_argument("--http_server_address", required=True)
    parser.add_argument("--checkpoint_dir", required=True)
    parser.add_argument("--feature_map", choices=("none", "empty", "four"), default="none")
    args = parser.parse_args()
    try:
        FLServerJob(args.yaml_config, args.http_server_address, "127.0.0.1", args.checkpoint_dir).run(
            feature_map_of(args.feature_map))
    except RuntimeError as exc:
        print(f"FAILED server: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
