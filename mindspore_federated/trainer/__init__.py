"""Training-side API: FederatedLearningManager and PushMetrics."""
