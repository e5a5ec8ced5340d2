"""Cluster state: the contract (base), Redis and in-memory backends, key patterns, Lua, the client factory."""
