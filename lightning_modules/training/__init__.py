"""Training with Lightning: the LightningModule, ``train(cfg)``, optimizers, callbacks, DDP.

The only subpackage of ``lightning_modules`` that imports Lightning.
"""
