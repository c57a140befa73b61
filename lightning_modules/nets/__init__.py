"""The network, its inference-only twin, losses, metrics and checkpoint files (no Lightning)."""
