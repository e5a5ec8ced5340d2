"""Process entry of the scheduler (python -m, msf-scheduler): flags, config, exit codes."""
import argparse
import sys

from mindspore_federated import log
from mindspore_federated.config.overrides import merged_overrides
from mindspore_federated.errors import SCHED_SSL_NEEDS_JOB as SSL_NEEDS_JOB
from mindspore_federated.errors import ConfigError, StateError
from mindspore_federated.exit_codes import ExitCode
from mindspore_federated.scheduler.role import DEFAULT_MANAGE_ADDRESS, Scheduler, load_scheduler_config
from mindspore_federated.startup.ssl_config import ssl_config_from_env
from mindspore_federated.tls import https_server_context as server_ssl_context

LOG = log.get_logger("mindspore_federated.scheduler")

# seed-001 flags that describe the servers or the older TCP networking: accepted, not used by the scheduler
IGNORED_FLAGS = ("--fl_server_port", "--server_num", "--worker_num", "--ms_role", "--server_mode",
                 "--start_fl_job_threshold", "--local_server_num", "--node_id", "--enable_ssl",
                 "--http_server_address", "--tcp_server_ip", "--checkpoint_dir")


def _port(text):
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected 1..65535")
    return value


def parse_args(argv=None):
    """Flags of run_sched.py (seed 000) and of the seed-001 launch line; unknown flags are errors."""
    parser = argparse.ArgumentParser(prog="python -m mindspore_federated.scheduler",
                                     description="MindSpore Federated scheduler (REST management plane)")
    parser.add_argument("--yaml_config", default="default_yaml_config.yaml")
    parser.add_argument("--scheduler_manage_address", default=None,
                        help=f"ip:port of the REST API (default {DEFAULT_MANAGE_ADDRESS})")
    parser.add_argument("--scheduler_ip", default=None, help="seed 001: IP of the REST API")
    parser.add_argument("--scheduler_manage_port", default=None, help="seed 001: port of the REST API")
    parser.add_argument("--scheduler_port", type=_port, default=None,
                        help="seed 001: the cluster's scheduler port; recorded in the process registry so that "
                             "`finish_cloud.py --scheduler_port P` finds this cluster (default: the manage port)")
    parser.add_argument("--fl_name", default=None, help="overrides fl_name of the YAML")
    parser.add_argument("--redis_address", default=None, help="overrides distributed_cache.address of the YAML")
    parser.add_argument("--config_file_path", default="",
                        help="seed 001: JSON config; its ssl keys (server_cert_path, ...) override the YAML")
    for flag in IGNORED_FLAGS:
        parser.add_argument(flag, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    notes = [f"{flag} is not used by this scheduler and is ignored" for flag in IGNORED_FLAGS
             if getattr(args, flag[2:]) is not None]
    if args.scheduler_manage_address is None:
        default_ip, _, default_port = DEFAULT_MANAGE_ADDRESS.rpartition(":")
        ip, port = args.scheduler_ip or default_ip, args.scheduler_manage_port or default_port
        args.scheduler_manage_address = f"{ip}:{port}"
    elif args.scheduler_ip or args.scheduler_manage_port:
        notes.append("--scheduler_manage_address given: --scheduler_ip/--scheduler_manage_port are ignored")
    return args, notes


def load_cli_config(args):
    """The YAML config with the command line's --fl_name/--redis_address and --config_file_path applied."""
    from mindspore_federated.recovery import load_json_config

    config = load_scheduler_config(args.yaml_config)
    overrides = merged_overrides(load_json_config(args.config_file_path),
                                 {"fl_name": args.fl_name, "distributed_cache.address": args.redis_address},
                                 role="scheduler")
    return config.with_overrides(overrides) if overrides else config


def main(argv=None) -> int:
    """Entry point of `python -m mindspore_federated.scheduler`; returns the process exit code."""
    args, notes = parse_args(argv)
    log.setup(role="scheduler")
    for note in notes:
        LOG.warning(note)
    try:
        config = load_cli_config(args)
        ssl_context = None
        if config.enable_ssl:
            passwords = ssl_config_from_env()
            if passwords is None:
                raise ConfigError(SSL_NEEDS_JOB)
            ssl_context = server_ssl_context(config, passwords)
    except RuntimeError as exc:
        return _fatal(exc, ExitCode.CONFIG_ERROR)
    try:
        scheduler = Scheduler(config, args.scheduler_manage_address, ssl_context,
                              scheduler_port=args.scheduler_port)
        scheduler.autoscale_ready(args.yaml_config)   # the local launcher starts servers with this YAML
    except RuntimeError as exc:
        return _fatal(exc, ExitCode.SCHEDULER_START_FAILED)
    log.set_node(scheduler.node_id)
    try:
        scheduler.run()
    except StateError as exc:
        return _fatal(exc, ExitCode.REDIS_UNREACHABLE)
    except RuntimeError as exc:
        return _fatal(exc, ExitCode.SCHEDULER_START_FAILED)
    return ExitCode.SUCCESS


def _fatal(exc, code) -> int:
    print(f"ERROR: {exc}", file=sys.stderr, flush=True)
    return code
