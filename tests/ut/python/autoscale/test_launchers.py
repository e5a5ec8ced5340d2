"""The launchers: the Kubernetes one patches the StatefulSet scale (and refuses clearly without a cluster or
without the `kubernetes` package); the local one starts and gracefully stops real processes."""
import asyncio
import signal
import sys

import pytest

from mindspore_federated import errors
from mindspore_federated.autoscale import KubernetesLauncher, LocalLauncher


class ScaleApi:
    """Records the scale patches (stands in for the cluster's API server, not for the launcher)."""

    def __init__(self):
        self.patches = []

    def patch_namespaced_stateful_set_scale(self, name, namespace, body):
        self.patches.append((name, namespace, body))


def test_kubernetes_launcher_patches_the_replicas():
    api = ScaleApi()
    launcher = KubernetesLauncher("fl", "fl-server", api=api)
    asyncio.run(launcher.scale(2, 3))
    assert api.patches == [("fl-server", "fl", {"spec": {"replicas": 3}})]


def test_kubernetes_launcher_refuses_without_a_cluster(tmp_path, monkeypatch):
    pytest.importorskip("kubernetes")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(errors.FederatedError, match="found no cluster"):
        KubernetesLauncher("fl", "fl-server")


def test_kubernetes_launcher_names_the_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "kubernetes", None)   # import kubernetes -> ImportError
    with pytest.raises(errors.FederatedError, match="'kubernetes'"):
        KubernetesLauncher("fl", "fl-server")


def test_local_launcher_starts_and_stops_processes(tmp_path):
    script = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); time.sleep(60)"
    launcher = LocalLauncher(lambda i: [sys.executable, "-c", script], lambda i: str(tmp_path / f"s{i}"))
    try:
        asyncio.run(launcher.scale(0, 2))
        assert launcher.indexes == [0, 1]
        procs = [p for _, p in launcher.procs]
        asyncio.run(launcher.scale(3, 2))      # one server it did not start is live too: stop one of its own
        assert launcher.indexes == [0]
        assert procs[1].wait(10) in (0, -signal.SIGTERM)   # SIGTERM (graceful), not SIGKILL
        asyncio.run(launcher.scale(1, 2))
        assert launcher.indexes == [0, 2]
    finally:
        launcher.close()
    assert all(p.poll() is not None for p in procs)
