"""Startup API: jobs, feature maps, SSL config and callbacks (reference-compatible paths)."""
