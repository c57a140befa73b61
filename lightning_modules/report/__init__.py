"""Reports: the dose study, statistics, figures, Markdown, image quality and sweep summaries (the ``report``
command is in ``commands``)."""
