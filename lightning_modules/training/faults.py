"""Training that fails loudly and never leaves half-written checkpoints."""

from __future__ import annotations

from typing import Any

from lightning.fabric.utilities.cloud_io import _atomic_save
from lightning.pytorch.plugins.io import TorchCheckpointIO

from datamodules.io.atomic import atomic_write


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; training stops instead of saving ruined weights."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, but through a temporary file renamed into place.

    A run killed while saving keeps its previous ``last.ckpt`` intact, so ``resume=auto`` works.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        atomic_write(path, lambda tmp: _atomic_save(checkpoint, tmp))
