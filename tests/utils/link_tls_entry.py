"""Test entry: the small-model server (server_entry.py) with enable_ssl, exercising only the inter-server
mutual TLS link. Until the HTTPS device API and Redis TLS are built, capabilities.py refuses enable_ssl and
the Redis client factory refuses TLS; this entry lifts both in its own process only, so the device API and
Redis stay plain here (never in a real server). Delete it once enable_ssl is fully built."""
import dataclasses
import os
import sys

from mindspore_federated import FLServerJob
from mindspore_federated.server import capabilities
from mindspore_federated.startup.ssl_config import SSLConfig
from mindspore_federated.state import clients
from tests.utils.server_entry import PrintingCallback, parse_args, small_feature_map


def main():
    args = parse_args()
    capabilities.NOT_BUILT.pop("enable_ssl", None)
    capabilities.HYPER_PARAM_NAMES.pop("enable_ssl", None)
    settings = clients.RedisSettings.from_config.__func__
    clients.RedisSettings.from_config = classmethod(
        lambda cls, cfg: dataclasses.replace(settings(cls, cfg), tls=False))
    passwords = SSLConfig(os.environ["MSF_TEST_SERVER_PASSWORD"], os.environ["MSF_TEST_CLIENT_PASSWORD"])
    FLServerJob(args.yaml_config, args.http_server_address, "127.0.0.1", args.checkpoint_dir,
                ssl_config=passwords).run(small_feature_map(), PrintingCallback())
    return 0


if __name__ == "__main__":
    sys.exit(main())
