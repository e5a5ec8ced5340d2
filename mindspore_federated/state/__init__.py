"""Cluster state in Redis: key patterns (keys.py) and the domain operations on them."""
