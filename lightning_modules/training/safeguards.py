"""Training that fails loudly and never leaves half-written checkpoints."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import _atomic_save
from lightning.pytorch.plugins.io import TorchCheckpointIO

from datamodules.io.atomic import atomic_write
from lightning_modules.runs.disk import DiskFullError, disk_full_message, free_bytes, human_size, is_disk_full


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; training stops instead of saving ruined weights."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, but through a temporary file renamed into place.

    A run killed while saving keeps its previous ``last.ckpt`` intact, so ``resume=auto`` works. A
    full disk ends the run with one line naming the checkpoint (:class:`DiskFullError`) instead of
    torch's ``[enforce fail at inline_container.cc]``; the temporary file is removed.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        try:
            atomic_write(path, lambda tmp: _atomic_save(checkpoint, tmp))
        except (OSError, RuntimeError) as err:
            needed = tensor_bytes(checkpoint)
            if not is_disk_full(err, path, needed):
                raise
            message = disk_full_message(path, "saving a checkpoint; the previous one is kept", needed)
            raise DiskFullError(f"{message}; free some space and run the same command again to continue") from err


def tensor_bytes(obj: Any) -> int:
    """Bytes of every tensor in ``obj`` (nested dicts, lists and tuples): about a checkpoint's size."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def checkpoint_estimate(model: torch.nn.Module, callbacks: Iterable[Any] = ()) -> int:
    """Bytes of one Lightning checkpoint of ``model``: the weights, two Adam moments per trainable
    weight, and one more copy of the weights with a weight-averaging callback (EMA)."""
    weights = tensor_bytes(dict(model.state_dict()))
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    averaging = any(any("Averaging" in k.__name__ for k in type(c).__mro__) for c in callbacks)
    return weights + 2 * trainable + (weights if averaging else 0)


def check_free_space(output_dir: str | Path, model: torch.nn.Module, callbacks: Iterable[Any] = ()) -> None:
    """Refuse to start when the run folder's disk cannot hold its checkpoints: ``best.ckpt`` and
    ``last.ckpt`` where they do not exist yet, plus the temporary copy each save writes first."""
    output_dir = Path(output_dir)
    one = checkpoint_estimate(model, callbacks)
    missing = sum(not (output_dir / "checkpoints" / name).is_file() for name in ("best.ckpt", "last.ckpt"))
    needed = one * (1 + missing)
    free = free_bytes(output_dir)
    if free is not None and free < needed:
        raise DiskFullError(
            f"{output_dir}: no space left on device for this run's checkpoints ({human_size(free)} free, "
            f"needs about {human_size(needed)}); free some space or choose another paths.log_dir"
        )
