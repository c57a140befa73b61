"""Network checkpoints: read any of the project's formats, build the network, save and export weights.

Reading (:func:`read_checkpoint`) imports only torch and safetensors. Building the trained
:class:`~lightning_modules.nets.unet.DenoisingUnet` (:func:`build_network`, :func:`load_network`)
imports ``segmentation_models_pytorch``, whose import pulls in timm, torchvision and torch._dynamo
and takes seconds, so it happens only when called.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file

from datamodules.io.atomic import atomic_write

if TYPE_CHECKING:
    from lightning_modules.nets.unet import DenoisingUnet

# The DenoisingUnet arguments that define what its weights mean: fine-tuning needs them equal.
WEIGHT_KEYS = ("encoder_name", "residual", "decoder_attention_type", "decoder_channels", "norm", "input_block")
# The arguments a checkpoint stores; together they rebuild the network. eval_margin changes no weight.
NETWORK_KEYS = (*WEIGHT_KEYS, "eval_margin")


def read_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(hyper-parameters, state dict of the DenoisingUnet)`` of a Lightning ``.ckpt``, a
    ``best_model.pth`` or a ``.safetensors`` export; floating-point weights come back as fp32.

    Keys are those of :class:`~lightning_modules.nets.unet.DenoisingUnet` (``unet.encoder...``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols: the error below says it all
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise ValueError(
            f"{path}: not a checkpoint of this project, torch cannot read it ({load_failure(err)}); use "
            "ckpt=pretrained, best, last or a .ckpt, best_model.pth or .safetensors written by this project"
        ) from err
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path}: holds a {type(checkpoint).__name__}, not a checkpoint of this project")
    if "hyper_parameters" in checkpoint:  # Lightning checkpoint of LitDenoiser
        state = {k[len("net.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
        return dict(checkpoint["hyper_parameters"]), state
    if "hparams" in checkpoint:
        return dict(checkpoint["hparams"]), checkpoint["state_dict"]
    raise ValueError(f"{path}: no model hyper-parameters inside; not a checkpoint of this project")


def load_failure(err: BaseException) -> str:
    """torch.load's reason in a few words, without its advice to use ``weights_only=False`` (never safe
    for a file of unknown origin) or to file an issue."""
    text = str(err)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
    text = " ".join(text.split())
    if text.isdigit() or not text:  # e.g. "101": the first byte read as a pickle opcode
        text = "not a pickle or zip file"
    return text if len(text) <= 200 else text[:197] + "..."


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
    digest = hashlib.sha256(extra.encode())
    for key in sorted(state):
        value = state[key].detach().cpu().contiguous()
        digest.update(f"{key}:{tuple(value.shape)}:{value.dtype}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def save_weights(
    path: str | os.PathLike, net: torch.nn.Module, hparams: dict[str, Any], extra: dict | None = None
) -> Path:
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
    for key in ("intensity_map", "fusion"):  # a self-supervised model's map to full dose and N2V2's fusion
        if hparams.get(key):
            network[key] = hparams[key]
    metadata = {"hparams": json.dumps(network), "format": "xray-denoise/unet"}
    return atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=metadata))


def load_network(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[DenoisingUnet, dict[str, Any]]:
    """Rebuild the :class:`DenoisingUnet` stored in a Lightning ``.ckpt``, a ``best_model.pth`` or a
    ``.safetensors`` export (weights are loaded as fp32).

    Uses ``torch.load(weights_only=True)``; pretrained-encoder downloads are never triggered
    (the weights come from the file). Returns ``(network in eval mode, hyper-parameters)``.
    """
    hparams, state = read_checkpoint(path, map_location)
    return build_network(hparams, state), hparams


def build_network(hparams: dict[str, Any], state: dict[str, torch.Tensor]) -> DenoisingUnet:
    """The trained :class:`DenoisingUnet` (eval mode) from already-read hyper-parameters and weights."""
    from lightning_modules.nets.unet import DenoisingUnet  # imports segmentation_models_pytorch

    net = DenoisingUnet(encoder_weights=None, **{k: hparams[k] for k in NETWORK_KEYS if k in hparams})
    net.load_state_dict(state)
    return net.eval()


def load_weights_into(net: torch.nn.Module, path: str | os.PathLike, model_hparams: dict[str, Any], key: str) -> None:
    """Copy the network weights of a checkpoint (any format :func:`load_network` reads) into ``net``.

    Used to fine-tune: only the weights are taken (no optimizer, scheduler or counters). The
    checkpoint's :data:`WEIGHT_KEYS` must equal ``model_hparams``' (the new run evaluates with its own
    ``eval_margin``); the error names ``key``. One exception: a checkpoint without ``input_block``
    goes into a network with one, which starts as a no-op (:class:`~lightning_modules.nets.unet.FullResolutionInput`).
    """
    hparams, state = read_checkpoint(path)
    grows = bool(model_hparams.get("input_block")) and not hparams.get("input_block")
    differ = [
        f"{name}: {hparams[name]!r} in the checkpoint, {model_hparams.get(name)!r} in model"
        for name in WEIGHT_KEYS
        if name in hparams
        and _plain(hparams[name]) != _plain(model_hparams.get(name))
        and not (grows and name == "input_block")
    ]
    if differ:
        raise ValueError(f"{key}={path}: a different network ({'; '.join(differ)}); set model.* to match")
    if grows:
        state = {**{k: v for k, v in net.state_dict().items() if k.startswith("input_block.")}, **state}
    net.load_state_dict(state)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
