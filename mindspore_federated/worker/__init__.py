"""The worker role: cluster presence (node.py), links to the servers (link.py), the hybrid and cloud
workers (hybrid.py, cloud.py) and the process entry (`python -m mindspore_federated.worker`)."""
