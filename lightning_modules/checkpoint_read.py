"""Reading a checkpoint's network hyper-parameters and weights without building the network.

Imports only torch and safetensors (not segmentation_models_pytorch, whose import pulls in timm,
torchvision and torch._dynamo and takes seconds), so inference paths that build their own network
(:mod:`lightning_modules.fast_unet`, ONNX Runtime) start fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch


def read_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(hyper-parameters, state dict of the DenoisingUnet)`` of a Lightning ``.ckpt``, a
    ``best_model.pth`` or a ``.safetensors`` export; floating-point weights come back as fp32.

    Keys are those of :class:`~lightning_modules.model.DenoisingUnet` (``unet.encoder...``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise ValueError(f"{path}: not a readable checkpoint ({err})") from err
    if "hyper_parameters" in checkpoint:  # Lightning checkpoint of LitDenoiser
        state = {k[len("net."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
        return dict(checkpoint["hyper_parameters"]), state
    if "hparams" in checkpoint:
        return dict(checkpoint["hparams"]), checkpoint["state_dict"]
    raise ValueError(f"{path}: no model hyper-parameters inside; not a checkpoint of this project")


def _read_safetensors(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
    if "hparams" not in metadata:
        raise ValueError(f"{path}: no model hyper-parameters in its metadata; not a model of this project")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return json.loads(metadata["hparams"]), state


def state_fingerprint(state: dict[str, torch.Tensor], extra: str = "") -> str:
    """A short hash of the weights (names, shapes, values) and ``extra``: a cache key for exports."""
    import hashlib

    digest = hashlib.sha256(extra.encode())
    for key in sorted(state):
        value = state[key].detach().cpu().contiguous()
        digest.update(f"{key}:{tuple(value.shape)}:{value.dtype}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]
