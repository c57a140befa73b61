"""The top layer: each script's command and what every script wraps around it.

``export(cfg)`` (``scripts/export.py``), ``fit_noise(cfg)`` (``scripts/fit_noise.py``), the config
resolvers every script registers, and one-line errors. Anything below may be imported from here;
nothing below imports from here (``tests/test_layers.py``).
"""
