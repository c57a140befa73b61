"""Image I/O, pairing, low-dose degradation, datasets and LightningDataModules.

Import submodules directly; only :mod:`datamodules.datamodule` imports Lightning.
"""
