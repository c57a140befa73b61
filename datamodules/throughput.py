"""Measuring how fast a datamodule's training loader delivers patches."""

from __future__ import annotations

import time

from datamodules.datamodule import _DenoisingDataModule


def loader_throughput(datamodule: _DenoisingDataModule, batches: int = 50, warmup_batches: int = 3) -> dict[str, float]:
    """Patches/s and Mpix/s of ``train_dataloader()`` over ``batches`` batches after ``warmup_batches``.

    Epochs are restarted as needed, so small datasets can be measured over many batches.
    """
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    seen, count, pixels, start = 0, 0, 0, None
    total = warmup_batches + batches
    while seen < total:
        for batch in loader:
            seen += 1
            if seen == warmup_batches:
                start = time.perf_counter()
            elif seen > warmup_batches:
                pixels += batch["low"].numel()
                count = seen - warmup_batches
            if seen >= total:
                break
    elapsed = time.perf_counter() - (start if start is not None else time.perf_counter())
    patches = count * datamodule.batch_size
    return {
        "batches": count,
        "seconds": elapsed,
        "patches_per_s": patches / elapsed,
        "mpix_per_s": pixels / elapsed / 1e6,
    }
