"""Networks, training, inference, classical baselines, reports and run bookkeeping, one subpackage each.

- :mod:`~lightning_modules.nets`: the network (``smp.Unet``), losses, metrics, checkpoints.
- :mod:`~lightning_modules.training`: the LightningModule, ``train(cfg)``, optimizers, callbacks, DDP.
  The only subpackage that imports Lightning.
- :mod:`~lightning_modules.runs`: run folders, ``run_info.json``, config helpers, resume, export.
- :mod:`~lightning_modules.inference`: backends, tiling, self-ensembling, ``denoise(cfg)``, ``evaluate(cfg)``.
- :mod:`~lightning_modules.classical`: NLM and BM3D baselines with their variance stabilisers.
- :mod:`~lightning_modules.report`: model reports (dose study, statistics, figures) and sweep summaries.

Nothing is imported eagerly: import submodules directly, so inference and reports start without
Lightning (``tests/test_layout.py`` checks it).
"""
