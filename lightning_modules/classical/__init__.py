"""Classical baselines (non-local means, BM3D) after a variance-stabilising transform."""
