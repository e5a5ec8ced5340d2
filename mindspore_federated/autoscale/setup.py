"""The scheduler's autoscaler from the `autoscale` section of the YAML: policy, signals and launcher."""
import os

from mindspore_federated.autoscale.controller import Autoscaler
from mindspore_federated.autoscale.launcher import KubernetesLauncher, LocalLauncher, python_server_command
from mindspore_federated.autoscale.policy import PolicyConfig
from mindspore_federated.errors import AUTOSCALE_BAD_CONFIG, ConfigError

POD_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
LOCAL_WORKDIR = "autoscale_servers"


def policy_config(section):
    """PolicyConfig of an `autoscale` config section; ConfigError when the values contradict each other."""
    try:
        return PolicyConfig(min_servers=section.min_servers, max_servers=section.max_servers,
                            target_devices_per_server=section.target_devices_per_server,
                            hysteresis=section.hysteresis, cooldown_s=section.cooldown)
    except ValueError as exc:
        raise ConfigError(AUTOSCALE_BAD_CONFIG.format(reason=exc)) from None


def _pod_namespace():
    try:
        with open(POD_NAMESPACE_FILE, encoding="utf-8") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


def build_autoscaler(cfg, yaml_path):
    """The Autoscaler the config asks for (its signal source set by the caller once the cluster state is
    connected), or None when autoscale.enable_autoscale is false. ConfigError/FederatedError name what is wrong."""
    section = cfg.autoscale
    if not section.enable_autoscale:
        return None
    policy = policy_config(section)
    if section.launcher == "kubernetes":
        launcher = KubernetesLauncher(section.k8s_namespace or _pod_namespace(), section.k8s_statefulset)
    else:
        if yaml_path is None:
            raise ConfigError(AUTOSCALE_BAD_CONFIG.format(reason="the local launcher needs the YAML file path"))
        workdir = os.path.abspath(LOCAL_WORKDIR)

        def workdir_of(index):
            return os.path.join(workdir, f"server{index}")
        command = python_server_command(os.path.abspath(yaml_path), "127.0.0.1",
                                        lambda i: section.local_first_port + i, workdir_of)
        launcher = LocalLauncher(command, workdir_of)
    return Autoscaler(policy, None, launcher)
