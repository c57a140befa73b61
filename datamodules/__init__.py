"""Image I/O (:mod:`datamodules.io`), noise/dose models (:mod:`datamodules.noise`), datasets and
LightningDataModules.

Import submodules directly; only :mod:`datamodules.datamodule` (and :mod:`datamodules.throughput`,
which measures it) imports Lightning.
"""

from pathlib import Path

# The embedded sample radiographs (see sample_data/CREDITS.md): the default data of every command.
SAMPLE_ROOT = Path(__file__).resolve().parent / "sample_data"
