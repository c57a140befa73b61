"""Networks, training, inference, classical baselines, reports, run bookkeeping and commands, one subpackage each.

Layers, bottom to top (a module imports only from its own layer or the ones below it, and no imports
form a cycle; ``tests/test_layers.py`` checks both): ``datamodules.io`` < ``datamodules`` < ``nets`` <
``selfsup`` < ``runs`` < ``inference`` < ``classical`` < ``training`` < ``report`` < ``commands``.

- :mod:`~lightning_modules.nets`: the network (``smp.Unet``), losses, metrics, checkpoints.
- :mod:`~lightning_modules.selfsup`: self-supervised losses, noise level, fusion, intensity map (torch only).
- :mod:`~lightning_modules.runs`: run folders, ``run_info.json``, resume, run lock, job status.
- :mod:`~lightning_modules.inference`: backends, tiling, self-ensembling, ``denoise(cfg)``, ``evaluate(cfg)``.
- :mod:`~lightning_modules.classical`: NLM and BM3D baselines with their variance stabilisers.
- :mod:`~lightning_modules.training`: the LightningModule, ``train(cfg)``, optimizers, callbacks, DDP.
  The only subpackage that imports Lightning.
- :mod:`~lightning_modules.report`: model reports (dose study, statistics, figures) and sweep summaries.
- :mod:`~lightning_modules.commands`: ``export(cfg)``, ``fit_noise(cfg)``, config resolvers, one-line errors.

Nothing is imported eagerly: import submodules directly, so inference and reports start without
Lightning (``tests/test_layout.py`` checks it).
"""
