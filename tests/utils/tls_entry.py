"""Test entry for enable_ssl clusters: `server` runs `python -m mindspore_federated.server`, `scheduler` runs
FlSchedulerJob(..., ssl_config=SSLConfig(...)); PKCS#12 passwords come from MSF_SSL_SERVER_PASSWORD /
MSF_SSL_CLIENT_PASSWORD.

While capabilities.NOT_BUILT still has an `enable_ssl` row, it names only mutual TLS on the inter-server link
(branch mtls_pki). The device API's HTTPS and TLS/AUTH to Redis that these tests exercise are built, so this
entry lifts that one row for the test process; delete the pop when the row is gone."""
import sys


def main(argv):
    from mindspore_federated.server import capabilities

    capabilities.NOT_BUILT.pop("enable_ssl", None)
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
