"""Training with Lightning: the LightningModule, optimizers, callbacks, stages, DDP (``train(cfg)`` is in
``commands``). With ``commands.train`` and ``datamodules.datamodule``, the only code that imports Lightning.
"""
