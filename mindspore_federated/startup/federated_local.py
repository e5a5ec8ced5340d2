"""FLServerJob and FlSchedulerJob: the reference-compatible entry points that run a role in this process."""
from mindspore_federated import errors
from mindspore_federated.log import setup


class FLServerJob:
    """Runs one FL server (device HTTP API + cluster membership) in this process."""

    def __init__(self, yaml_config, http_server_address, tcp_server_ip="127.0.0.1", checkpoint_dir="./fl_ckpt/",
                 ssl_config=None):
        for name, value in (("yaml_config", yaml_config), ("http_server_address", http_server_address),
                            ("tcp_server_ip", tcp_server_ip), ("checkpoint_dir", checkpoint_dir)):
            if not isinstance(value, str):
                raise RuntimeError(errors.PARAM_TYPE.format(name=name, type="str", got=type(value).__name__))
        self.yaml_config = yaml_config
        self.http_server_address = http_server_address
        self.tcp_server_ip = tcp_server_ip
        self.checkpoint_dir = checkpoint_dir
        self.ssl_config = ssl_config
        self.overrides = {}          # dotted YAML key -> value (command-line flags of the launch scripts)
        self.node_id = None          # explicit node id (else MS_NODE_ID, the recovery file, or generated)
        self.config_file_path = ""   # seed-001 JSON config with a `recovery` section

    def run(self, feature_map=None, callback=None):
        """Blocks for the server's lifetime; returns after SIGTERM/SIGINT (graceful stop)."""
        from mindspore_federated.server.job import run_server

        run_server(self.yaml_config, self.http_server_address, self.tcp_server_ip, self.checkpoint_dir,
                   self.ssl_config, self.overrides, self.node_id, self.config_file_path, feature_map,
                   callback)


class FlSchedulerJob:
    """Runs the Scheduler's REST management plane in this process."""

    def __init__(self, yaml_config, manage_address="127.0.0.1:11202", ssl_config=None):
        if not isinstance(manage_address, str):
            raise RuntimeError(errors.SCHED_MANAGE_TYPE)
        self.yaml_config = yaml_config
        self.manage_address = manage_address
        self.ssl_config = ssl_config

    def run(self):
        """Blocks while serving; returns after SIGTERM/SIGINT."""
        from mindspore_federated.scheduler.role import run_scheduler

        setup(role="scheduler")
        return run_scheduler(self.yaml_config, self.manage_address, self.ssl_config)
