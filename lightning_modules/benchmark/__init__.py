"""``scripts/benchmark.py``: throughput against the hardware's ceilings and against the alternatives.

One job per module: :mod:`.measure` (timers, peak memory, measured subprocesses), :mod:`.machine`,
:mod:`.ceilings` (matmul/conv GFLOP/s, model FLOPs), :mod:`.predictors` (the inference paths by name),
:mod:`.inference` (raw forward), :mod:`.tiled` (``scripts/denoise.py`` end to end, start-up),
:mod:`.quality` (PSNR of each path), :mod:`.training` (Lightning loop vs raw loop, loader),
:mod:`.classical` (NLM, BM3D), :mod:`.targets` (the issue's targets), :mod:`.report` (table, Markdown,
JSON) and :mod:`.runner` (the sections in order). Nothing here imports Lightning except
:mod:`.training`, and only when that section runs.
"""
