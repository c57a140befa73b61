"""Where and how inference runs the network: device, backend and precision, and loading it once for that.

Backends (``backend=``):

- ``fast`` (what ``auto`` picks): :class:`~lightning_modules.nets.fast_unet.FastUnet`, BatchNorm folded
  into the convolutions, oneDNN fused convolution + ReLU (+ residual add) kernels on the CPU in fp32
  and, where the CPU has native bf16, in bf16 (bf16 weights, no autocast), no
  ``segmentation_models_pytorch`` import. Falls back to ``torch`` for networks it cannot rebuild.
- ``torch``: the trained ``DenoisingUnet`` in eager mode (``channels_last`` as configured).
- ``compile``: FastUnet through ``torch.compile`` (inductor, weights frozen on the CPU); the first
  tiles wait for compilation (tens of seconds on a CPU), so it pays off only for many large images.
- ``onnxruntime``: FastUnet exported to ONNX once per set of weights (cached) and run by ONNX
  Runtime on the CPU in fp32 (needs the ``onnx`` extra).

``precision=auto`` is bf16 autocast where the device computes bf16 natively (a CPU whose oneDNN
reports bf16 support, e.g. AVX-512-BF16/AMX; a CUDA GPU with bf16) and fp32 elsewhere, where bf16
is emulated and many times slower.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch
from torch import nn

from lightning_modules.inference.allocator import reuse_freed_memory
from lightning_modules.nets.checkpoints import build_network, read_checkpoint, state_fingerprint
from lightning_modules.nets.fast_unet import (
    FP32_DECODER_BLOCKS,
    STRIPE_DECODER_BLOCKS,
    FastUnet,
    fused_ops_available,
    unsupported_reason,
)
from lightning_modules.nets.forward import eval_margin
from lightning_modules.selfsup.fusion import FUSION_KEY, with_fusion
from lightning_modules.selfsup.intensity import MAP_KEY, with_intensity_map

BACKENDS = ("auto", "fast", "torch", "compile", "onnxruntime")
PRECISIONS = ("auto", "32", "bf16")


def pick_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda: no CUDA device is available (use device=cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device={name!r} is unknown; use auto, cpu or cuda")
    return torch.device(name)


def bf16_native(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 in hardware (oneDNN's check on a CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class InferencePath:
    """A resolved choice: ``backend`` is never ``auto``; ``fused`` = oneDNN fused kernels."""

    backend: str
    bf16: bool
    channels_last: bool
    fused: bool = False
    note: str = ""
    edge_margin: int = 0  # pixels the network replicates around every pass (its eval_margin); tile plans count them

    def describe(self) -> str:
        parts = [self.backend + (" (oneDNN fused)" if self.fused else ""), "bf16" if self.bf16 else "fp32"]
        if self.backend == "torch" and self.channels_last:
            parts.append("channels_last")
        return ", ".join(parts) + (f" [{self.note}]" if self.note else "")


def choose_path(
    backend: str = "auto", precision: str = "auto", device: torch.device | str = "cpu", channels_last: bool = True
) -> InferencePath:
    """Resolve ``backend``/``precision`` settings (``auto`` included) for ``device``."""
    backend, precision, device = str(backend), str(precision), torch.device(device)
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is unknown; use one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is unknown; use auto, 32 or bf16")
    if backend == "onnxruntime":
        if device.type != "cpu":
            raise ValueError(f"backend=onnxruntime runs on the CPU; use device=cpu (got device={device.type})")
        if precision == "bf16":
            raise ValueError("backend=onnxruntime runs fp32 only; use precision=32 or auto")
        return InferencePath("onnxruntime", bf16=False, channels_last=False)
    bf16 = precision == "bf16" or (precision == "auto" and bf16_native(device))
    if backend == "auto":
        backend = "fast"
    # bf16 runs fused (bf16 weights, no autocast) only where the CPU computes it natively
    fused = backend == "fast" and device.type == "cpu" and fused_ops_available() and (not bf16 or bf16_native(device))
    return InferencePath(backend, bf16=bf16, channels_last=bool(channels_last), fused=fused)


class FixedBatch(nn.Module):
    """Pads every batch to ``batch_size`` (repeating its last item), so a compiled network sees one shape."""

    def __init__(self, net: nn.Module, batch_size: int) -> None:
        super().__init__()
        self.net, self.batch_size = net, batch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        count = x.shape[0]
        if count < self.batch_size:
            x = torch.cat([x, x[-1:].expand(self.batch_size - count, *x.shape[1:])])
        return self.net(x)[:count]


def load_predictor(
    checkpoint: str | os.PathLike,
    device: torch.device | str,
    path: InferencePath,
    batch_size: int = 4,
    cache_dir: str | os.PathLike | None = None,
    reuse_memory: bool = True,
) -> tuple[nn.Module, InferencePath]:
    """The network of ``checkpoint`` ready to run along ``path``; returns it and the path taken
    (``fast`` becomes ``torch`` for networks FastUnet cannot rebuild, with the reason in ``note``).

    ``cache_dir`` holds ONNX exports (default ``$XDG_CACHE_HOME/xray-denoise/onnx``).
    ``reuse_memory`` (CPU): keep freed memory for reuse, process-wide (:mod:`lightning_modules.inference.allocator`).
    """
    device = torch.device(device)
    if reuse_memory and device.type == "cpu":
        reuse_freed_memory()
    hparams, state = read_checkpoint(checkpoint)
    path = replace(path, edge_margin=eval_margin(hparams))
    if path.backend == "torch":
        net: nn.Module = build_network(hparams, state)
    else:
        reason = unsupported_reason(hparams, state)
        if reason is None:
            dtype = torch.bfloat16 if path.fused and path.bf16 else torch.float32
            net = FastUnet(
                hparams,
                state,
                fused=path.fused,
                dtype=dtype,
                fp32_blocks=FP32_DECODER_BLOCKS,
                stripe_blocks=STRIPE_DECODER_BLOCKS,
            )
        else:
            net = build_network(hparams, state)
            if path.backend == "fast":
                path = replace(path, backend="torch", fused=False, note=f"FastUnet does not support {reason}")
    if not isinstance(net, FastUnet) and path.channels_last:
        net = net.to(memory_format=torch.channels_last)
    net = net.to(device).eval()
    if path.backend == "onnxruntime":  # the graph holds the network; fusion and map run around it in torch
        from lightning_modules.inference.onnx import OnnxPredictor, cached_onnx

        network = repr({k: hparams.get(k) for k in ("encoder_name", "residual", "norm", "decoder_attention_type")})
        onnx_path, _ = cached_onnx(net, state_fingerprint(state, network), cache_dir)
        net = OnnxPredictor(onnx_path, eval_margin=path.edge_margin)
    net = with_fusion(net, hparams.get(FUSION_KEY))  # N2V2: fused with the input
    net = with_intensity_map(net, hparams.get(MAP_KEY))  # self-supervised: to full dose
    if path.backend == "compile":
        options = {"freezing": True} if device.type == "cpu" else None
        return FixedBatch(torch.compile(net, dynamic=False, options=options), batch_size), path
    return net, path
