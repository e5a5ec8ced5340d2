"""The package's public names: `from mindspore_federated import *` works and exports only names that exist."""
import subprocess
import sys

import mindspore_federated


def test_every_exported_name_resolves():
    for name in mindspore_federated.__all__:
        assert getattr(mindspore_federated, name) is not None, name
    assert sorted(dir(mindspore_federated)) == sorted(mindspore_federated.__all__)


def test_worker_api_is_exported():
    """Issue 16 built the worker: the training-side API joins the exports (MindSpore loads on first use)."""
    for name in ("FederatedLearningManager", "PushMetrics"):
        assert name in mindspore_federated.__all__


def test_star_import_in_a_fresh_interpreter():
    probe = ("from mindspore_federated import *\n"
             "import mindspore_federated as m\n"
             "missing = [n for n in m.__all__ if n not in globals()]\n"
             "assert not missing, missing\n"
             "print(' '.join(sorted(m.__all__)))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == sorted(mindspore_federated.__all__)
    assert {"FLServerJob", "FlSchedulerJob", "FeatureMap", "SSLConfig", "log"} <= set(out.stdout.split())
