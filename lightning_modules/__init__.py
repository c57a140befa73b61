"""Model, losses, metrics, the LightningModule and inference helpers.

Import submodules directly (``from lightning_modules.model import DenoisingUnet``): this package
imports nothing eagerly, so inference code can run without loading Lightning.
"""
