"""Loading and saving network weights without Lightning (Lightning checkpoints included)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from datamodules.atomic import atomic_write
from lightning_modules.checkpoint_read import read_checkpoint
from lightning_modules.model import DenoisingUnet

NETWORK_KEYS = ("encoder_name", "residual", "decoder_attention_type", "decoder_channels", "norm")


def save_weights(path: str | os.PathLike, net: torch.nn.Module, hparams: dict[str, Any], extra: dict | None = None) -> Path:
    """Save ``net``'s state dict with the model hyper-parameters (plain values only)."""
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    payload = {"state_dict": state, "hparams": hparams, **(extra or {})}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def export_safetensors(
    path: str | os.PathLike, net: torch.nn.Module, hparams: dict[str, Any], half: bool = True
) -> Path:
    """Write ``net``'s weights as safetensors (fp16 when ``half``) with the network hyper-parameters.

    The hyper-parameters go into the file's metadata as JSON, so the file alone rebuilds the
    network. Running statistics and other integer buffers keep their dtype.
    """
    state = {}
    for key, value in net.state_dict().items():
        value = value.detach().cpu().contiguous()
        state[key] = value.half() if half and value.is_floating_point() else value
    network = {k: hparams[k] for k in (*NETWORK_KEYS, "channels_last") if k in hparams}
    metadata = {"hparams": json.dumps(network), "format": "xray-denoise/unet"}
    return atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=metadata))


def load_network(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[DenoisingUnet, dict[str, Any]]:
    """Rebuild the :class:`DenoisingUnet` stored in a Lightning ``.ckpt``, a ``best_model.pth`` or a
    ``.safetensors`` export (weights are loaded as fp32).

    Uses ``torch.load(weights_only=True)``; pretrained-encoder downloads are never triggered
    (the weights come from the file). Returns ``(network in eval mode, hyper-parameters)``.
    """
    hparams, state = read_checkpoint(path, map_location)
    return _build(hparams, state), hparams


def _build(hparams: dict[str, Any], state: dict[str, torch.Tensor]) -> DenoisingUnet:
    net = DenoisingUnet(encoder_weights=None, **{k: hparams[k] for k in NETWORK_KEYS if k in hparams})
    net.load_state_dict(state)
    return net.eval()


def load_weights_into(net: torch.nn.Module, path: str | os.PathLike, model_hparams: dict[str, Any], key: str) -> None:
    """Copy the network weights of a checkpoint (any format :func:`load_network` reads) into ``net``.

    Used to fine-tune: only the weights are taken (no optimizer, scheduler or counters). The
    checkpoint's network hyper-parameters must equal ``model_hparams``; the error names ``key``.
    """
    hparams, state = read_checkpoint(path)
    differ = [
        f"{name}: {hparams[name]!r} in the checkpoint, {model_hparams.get(name)!r} in model"
        for name in NETWORK_KEYS
        if name in hparams and _plain(hparams[name]) != _plain(model_hparams.get(name))
    ]
    if differ:
        raise ValueError(f"{key}={path}: a different network ({'; '.join(differ)}); set model.* to match")
    net.load_state_dict(state)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
