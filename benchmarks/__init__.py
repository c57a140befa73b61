"""Speed of the inference paths and the training step: ``python scripts/benchmark.py`` (docs/performance.md)."""
