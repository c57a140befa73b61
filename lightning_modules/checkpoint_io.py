"""Loading and saving network weights without Lightning (Lightning checkpoints included)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from datamodules.atomic import atomic_write
from lightning_modules.model import DenoisingUnet

NETWORK_KEYS = ("encoder_name", "residual", "decoder_attention_type", "decoder_channels", "norm")


def save_weights(path: str | os.PathLike, net: torch.nn.Module, hparams: dict[str, Any], extra: dict | None = None) -> Path:
    """Save ``net``'s state dict with the model hyper-parameters (plain values only)."""
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    payload = {"state_dict": state, "hparams": hparams, **(extra or {})}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_network(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[DenoisingUnet, dict[str, Any]]:
    """Rebuild the :class:`DenoisingUnet` stored in a Lightning ``.ckpt`` or a ``best_model.pth``.

    Uses ``torch.load(weights_only=True)``; pretrained-encoder downloads are never triggered
    (the weights come from the file). Returns ``(network in eval mode, hyper-parameters)``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise ValueError(f"{path}: not a readable checkpoint ({err})") from err
    if "hyper_parameters" in checkpoint:  # Lightning checkpoint of LitDenoiser
        hparams = checkpoint["hyper_parameters"]
        state = {k[len("net."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    elif "hparams" in checkpoint:
        hparams, state = checkpoint["hparams"], checkpoint["state_dict"]
    else:
        raise ValueError(f"{path}: no model hyper-parameters inside; not a checkpoint of this project")
    net = DenoisingUnet(encoder_weights=None, **{k: hparams[k] for k in NETWORK_KEYS if k in hparams})
    net.load_state_dict(state)
    return net.eval(), hparams
