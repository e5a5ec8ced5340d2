"""Examples of MindSpore Federated cloud training (importable so tests can reuse their pieces)."""
