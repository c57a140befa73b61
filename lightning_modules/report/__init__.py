"""Reports: ``report(cfg)`` (``scripts/report.py``), its dose study, statistics, figures, Markdown, and sweep summaries."""
