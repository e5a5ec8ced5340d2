"""Operator tools: finish_cloud (stop a cluster by its registered PIDs) and the process registry helpers."""
