"""Training-side API (FederatedLearningManager, PushMetrics): not built yet, so nothing is exported."""
