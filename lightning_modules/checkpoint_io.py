"""Loading and saving network weights without Lightning (Lightning checkpoints included)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from datamodules.atomic import atomic_write
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


def _read_safetensors(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
    if "hparams" not in metadata:
        raise ValueError(f"{path}: no model hyper-parameters in its metadata; not a model of this project")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return json.loads(metadata["hparams"]), state


def load_network(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[DenoisingUnet, dict[str, Any]]:
    """Rebuild the :class:`DenoisingUnet` stored in a Lightning ``.ckpt``, a ``best_model.pth`` or a
    ``.safetensors`` export (weights are loaded as fp32).

    Uses ``torch.load(weights_only=True)``; pretrained-encoder downloads are never triggered
    (the weights come from the file). Returns ``(network in eval mode, hyper-parameters)``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        hparams, state = _read_safetensors(path)
        return _build(hparams, state), hparams
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
    return _build(hparams, state), hparams


def _build(hparams: dict[str, Any], state: dict[str, torch.Tensor]) -> DenoisingUnet:
    net = DenoisingUnet(encoder_weights=None, **{k: hparams[k] for k in NETWORK_KEYS if k in hparams})
    net.load_state_dict(state)
    return net.eval()
