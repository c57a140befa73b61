"""Inference without Lightning: device/backend/precision, sliding-window tiling, self-ensembling, input
checks and scoring a split (the ``denoise`` and ``evaluate`` commands are in ``commands``)."""
