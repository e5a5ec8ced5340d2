"""Launchers carry out the autoscaler's decisions: local server processes (tests, `./build.sh run`) or the
replicas of the servers' StatefulSet through the Kubernetes API."""
import abc
import asyncio
import os
import signal
import subprocess
import sys

from mindspore_federated.errors import AUTOSCALE_K8S_CLIENT_MISSING, AUTOSCALE_K8S_NO_CLUSTER, FederatedError

STOP_TIMEOUT_S = 30.0


class Launcher(abc.ABC):
    """Changes the number of servers."""

    @abc.abstractmethod
    async def scale(self, current: int, desired: int) -> None:
        """From `current` live servers to `desired`: starts or gracefully stops servers (returns once the
        change is under way)."""


class LocalLauncher(Launcher):
    """Server processes on this machine: server number i runs `command(i)` (an argv list) in `cwd_of(i)`,
    logging to server<i>.log there; servers stop by SIGTERM (their graceful drain), newest first.
    `ready(i, proc)` may block until a new server serves."""

    def __init__(self, command, cwd_of, ready=None, env=None):
        self._command = command
        self._cwd_of = cwd_of
        self._ready = ready
        self._env = env
        self._next = 0
        self.procs = []       # (index, Popen), oldest first

    @property
    def indexes(self):
        return [i for i, _ in self.procs]

    async def scale(self, current, desired):
        """Starts desired - current servers, or stops current - desired of the ones it started (newest
        first; servers it did not start are never stopped)."""
        count = max(0, len(self.procs) + desired - current)
        while len(self.procs) < count:
            index, self._next = self._next, self._next + 1
            cwd = self._cwd_of(index)
            os.makedirs(cwd, exist_ok=True)
            with open(os.path.join(cwd, f"server{index}.log"), "ab") as log:
                proc = subprocess.Popen(self._command(index), env={**os.environ, **(self._env or {})}, cwd=cwd,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            self.procs.append((index, proc))
            if self._ready is not None:
                await asyncio.to_thread(self._ready, index, proc)
        while len(self.procs) > count:
            _, proc = self.procs.pop()
            await asyncio.to_thread(_stop, proc)

    def close(self):
        for _, proc in reversed(self.procs):
            _stop(proc)
        self.procs.clear()


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class KubernetesLauncher(Launcher):
    """Patches `spec.replicas` of the servers' StatefulSet; Kubernetes starts pods in order and stops the
    highest ordinals first, each through its preStop drain."""

    def __init__(self, namespace, statefulset, api=None):
        if api is None:
            try:
                from kubernetes import client, config  # noqa: PLC0415 - optional dependency
            except ImportError:
                raise FederatedError(AUTOSCALE_K8S_CLIENT_MISSING) from None
            try:
                config.load_incluster_config()
            except config.ConfigException:
                try:
                    config.load_kube_config()
                except (config.ConfigException, OSError) as exc:
                    raise FederatedError(AUTOSCALE_K8S_NO_CLUSTER.format(reason=exc)) from None
            api = client.AppsV1Api()
        self.api = api
        self.namespace = namespace
        self.statefulset = statefulset

    async def scale(self, current, desired):
        body = {"spec": {"replicas": int(desired)}}
        await asyncio.to_thread(self.api.patch_namespaced_stateful_set_scale, self.statefulset,
                                self.namespace, body)


def python_server_command(yaml_path, host, port_of, workdir_of, entry=("-m", "mindspore_federated.server")):
    """A LocalLauncher command: `python <entry> --yaml_config ... --http_server_address host:port_of(i)`."""
    def command(index):
        return [sys.executable, *entry, "--yaml_config", yaml_path,
                "--http_server_address", f"{host}:{port_of(index)}", "--tcp_server_ip", host,
                "--checkpoint_dir", os.path.join(workdir_of(index), "fl_ckpt")]
    return command
