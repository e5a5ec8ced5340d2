"""Cross-device LeNet5 example: simulated phones train on non-IID shards of sklearn digits via the device SDK."""
