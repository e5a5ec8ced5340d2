"""MindSpore checkpoints: `ckpt_format` (the .ckpt file format, save/load) and `recovery_files` (the recovery
checkpoint policy of a server: names, ordering, rotation, newest loadable file)."""
from mindspore_federated.checkpoint.ckpt_format import load_checkpoint, save_checkpoint
from mindspore_federated.checkpoint.recovery_files import RecoveryCheckpoints

__all__ = ["save_checkpoint", "load_checkpoint", "RecoveryCheckpoints"]
