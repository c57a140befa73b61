"""Self-supervised denoising from noisy images alone (``training=<method>``): Neighbor2Neighbor, an
N2V2-style blind spot and Recorrupted-to-Recorrupted, their noise level, the intensity map to full
dose, and the config checks. Torch only (no Lightning): the LightningModule that uses them is
:mod:`lightning_modules.training.self_supervised`. See ``docs/self_supervised.md``."""
