"""Inference without Lightning: device/backend/precision, sliding-window tiling, self-ensembling,
``denoise(cfg)`` (``scripts/denoise.py``) and ``evaluate(cfg)`` (``scripts/test.py``)."""
