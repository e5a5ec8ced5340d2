"""Test entry for enable_ssl clusters: `server` runs `python -m mindspore_federated.server`, `scheduler` runs
FlSchedulerJob(..., ssl_config=SSLConfig(...)); PKCS#12 passwords come from MSF_SSL_SERVER_PASSWORD /
MSF_SSL_CLIENT_PASSWORD."""
import sys


def main(argv):
    role, rest = argv[0], argv[1:]
    if role == "server":
        from mindspore_federated.server import main as server_main

        return server_main(rest)
    import argparse

    from mindspore_federated import FlSchedulerJob
    from mindspore_federated.startup.ssl_config import ssl_config_from_env

    parser = argparse.ArgumentParser()
    parser.add_argument("--yaml_config", required=True)
    parser.add_argument("--scheduler_manage_address", required=True)
    args = parser.parse_args(rest)
    try:
        FlSchedulerJob(args.yaml_config, args.scheduler_manage_address, ssl_config_from_env()).run()
    except RuntimeError as exc:
        print(f"FAILED scheduler: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
