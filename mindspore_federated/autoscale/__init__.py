"""Policy autoscaler: load signals from the cluster state, a pure decision, and launchers that act on it."""
from mindspore_federated.autoscale.controller import Autoscaler, DecisionRow
from mindspore_federated.autoscale.launcher import KubernetesLauncher, Launcher, LocalLauncher
from mindspore_federated.autoscale.policy import Decision, PolicyConfig, Signals, decide
from mindspore_federated.autoscale.signals import ClusterStateSignals, SignalSource

__all__ = ["Autoscaler", "DecisionRow", "KubernetesLauncher", "Launcher", "LocalLauncher", "Decision",
           "PolicyConfig", "Signals", "decide", "ClusterStateSignals", "SignalSource"]
