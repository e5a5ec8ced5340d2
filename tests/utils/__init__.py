"""Test harness: real redis-server, role processes with readiness handshakes, bounded waits."""
