"""Training-side API: FederatedLearningManager (a MindSpore Callback) and PushMetrics (a MindSpore Cell)."""
