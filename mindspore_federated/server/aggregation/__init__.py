"""Aggregation of device updates: the FedAvg accumulator and the pipeline of named aggregation stages."""
