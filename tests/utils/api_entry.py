"""Test entry: a server run through `FLServerJob.run(feature_map, callback)` whose callback prints one
`CALLBACK {json}` line per hook (the whole CallbackContext for on_iteration_end); the feature map is
chosen with --feature_map (small, dict, ckpt:<path>). Also the readers of those lines."""
import argparse
import json
import os
import sys

import numpy as np

API_ENTRY = (os.path.abspath(__file__),)
DICT_MODEL = {"conv.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
              "fc.bias": np.array([1.5, -2, 4], np.float32)}


# ---- server entry ----------------------------------------------------------------------------------------

def _feature_map(kind):
    from tests.utils.server_entry import small_feature_map

    if kind == "small":
        return small_feature_map()
    if kind == "dict":
        return {name: value.copy() for name, value in DICT_MODEL.items()}
    if kind.startswith("ckpt:"):
        return kind[len("ckpt:"):]
    raise ValueError(kind)


def _json_callback():
    from mindspore_federated import Callback

    class JsonCallback(Callback):
        """Prints every hook, with the whole CallbackContext for on_iteration_end."""

        def after_started(self):
            print("CALLBACK " + json.dumps({"hook": "after_started"}), flush=True)

        def before_stopped(self):
            print("CALLBACK " + json.dumps({"hook": "before_stopped"}), flush=True)

        def on_iteration_end(self, context):
            items = context.feature_map.items()
            features = {item.name: {"require_aggr": item.require_aggr, "shape": list(item.shape),
                                    "data": [float(x) for x in item.data]} for item in items}
            print("CALLBACK " + json.dumps({
                "hook": "iteration_end", "iteration": context.iteration_num, "valid": context.iteration_valid,
                "result": context.iteration_result, "fl_name": context.fl_name,
                "instance": context.instance_name, "ckpt": context.checkpoint_file, "features": features}),
                flush=True)

    return JsonCallback()


def main():
    from mindspore_federated import FLServerJob

    parser = argparse.ArgumentParser()
    parser.add_argument("--yaml_config", required=True)
    parser.add_argument("--http_server_address", required=True)
    parser.add_argument("--checkpoint_dir", default="./fl_ckpt/")
    parser.add_argument("--feature_map", default="small")
    args = parser.parse_args()
    FLServerJob(args.yaml_config, args.http_server_address, "127.0.0.1", args.checkpoint_dir).run(
        _feature_map(args.feature_map), _json_callback())
    return 0


def callbacks(proc, hook="iteration_end"):
    """The JSON objects of every `CALLBACK` line of `hook` the server printed so far."""
    out = []
    for line in proc.output().splitlines():
        if line.startswith("CALLBACK "):
            obj = json.loads(line[len("CALLBACK "):])
            if obj["hook"] == hook:
                out.append(obj)
    return out


def wait_callback(proc, iteration, timeout=10.0):
    """The on_iteration_end context of `iteration` once the server printed it."""
    from tests.utils.wait import wait_for

    return wait_for(lambda: next((c for c in callbacks(proc) if c["iteration"] == iteration), None), timeout,
                    what=f"on_iteration_end of iteration {iteration}")


if __name__ == "__main__":
    sys.exit(main())
