"""Server role: `python -m mindspore_federated.server` runs one FL server process."""
import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="mindspore_federated.server", description=__doc__)
    parser.add_argument("--yaml_config", required=True)
    parser.add_argument("--http_server_address", default="127.0.0.1:6666")
    parser.add_argument("--tcp_server_ip", default="127.0.0.1")
    parser.add_argument("--checkpoint_dir", default="./fl_ckpt/")
    parser.add_argument("--model", default="lenet", help="initial model: 'lenet', 'lenet10x' or a .ckpt path")
    parser.add_argument("--seed", type=int, default=0, help="seed of the built-in initial model")
    parser.add_argument("--node_id", default=None, help="node id (default: MS_NODE_ID, the recovery file, "
                        "or a generated one); a restarted server with the same id takes its rank back")
    parser.add_argument("--config_file_path", default="", help="JSON with a `recovery` section (seed 001)")
    parser.add_argument("--start_fl_job_threshold", type=int, default=None, help="overrides the YAML")
    parser.add_argument("--fl_name", default=None, help="overrides the YAML")
    parser.add_argument("--redis_address", default=None, help="overrides distributed_cache.address")
    return parser.parse_args(argv)


def initial_feature_map(model, seed=0):
    from mindspore_federated.models import lenet5_feature_map

    if model == "lenet":
        return lenet5_feature_map(seed)
    if model == "lenet10x":
        return lenet5_feature_map(seed, copies=10)
    return model  # a .ckpt path, loaded by FLServerJob


def main(argv=None):
    """Runs a server until SIGTERM/SIGINT; returns the process exit code."""
    from mindspore_federated.errors import NotBuiltError
    from mindspore_federated.exit_codes import ExitCode
    from mindspore_federated.log import get_logger
    from mindspore_federated.server.job import run_server
    from mindspore_federated.startup.ssl_config import ssl_config_from_env

    args = parse_args(argv)
    try:
        overrides = {"round.start_fl_job_threshold": args.start_fl_job_threshold, "fl_name": args.fl_name,
                     "distributed_cache.address": args.redis_address}
        run_server(args.yaml_config, args.http_server_address, args.tcp_server_ip, args.checkpoint_dir,
                   ssl_config=ssl_config_from_env(), overrides=overrides, node_id=args.node_id,
                   config_file_path=args.config_file_path,
                   feature_map=initial_feature_map(args.model, args.seed))
    except RuntimeError as exc:
        get_logger(__name__).error("server failed to start: %s", exc)
        print(f"FAILED server: {exc}", flush=True)
        return ExitCode.CONFIG_ERROR if isinstance(exc, NotBuiltError) else ExitCode.SERVER_START_FAILED
    return ExitCode.SUCCESS


if __name__ == "__main__":
    sys.exit(main())
