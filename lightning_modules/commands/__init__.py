"""The top layer: each script's command and what every script wraps around it.

``train(cfg)``, ``evaluate(cfg)`` (``scripts/test.py``), ``denoise(cfg)``, ``report(cfg)``, ``export(cfg)``
and ``fit_noise(cfg)``, the config schemas and resolvers every script registers, and one-line errors.
Anything below may be imported from here; nothing below imports from here (``tests/test_layers.py``).
"""
