"""Where and how inference runs the network: device, backend and precision, and loading it once for that.

The network is always the trained ``DenoisingUnet``; the backends differ only in what runs it
(``backend=``; measurements in ``docs/performance.md``):

- ``onnxruntime`` (what ``auto`` picks for fp32 on the CPU when the ``onnx`` extra is installed):
  exported to ONNX once per set of weights (cached) and run by ONNX Runtime, fp32;
- ``torch``: eager PyTorch (``channels_last`` as configured); what ``auto`` picks for bf16, on a GPU
  and without ONNX Runtime. In bf16 (autocast) the full-resolution decoder block and the head stay
  fp32 (:data:`FP32_TAIL`: bf16 there moves the shipped models' pixels by up to 0.11; ``docs/inference.md``);
- ``compile``: ``torch.compile`` (inductor, weights frozen on the CPU); each new tile shape compiles
  first, so it pays off only for many images of one size.

``precision=auto`` is bf16 autocast where the device computes bf16 natively (a CPU whose oneDNN
reports bf16 support, e.g. AVX-512-BF16/AMX; a CUDA GPU with bf16) and fp32 elsewhere, where bf16
is emulated and many times slower.
"""

from __future__ import annotations

import importlib.util
import os
import weakref
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from lightning_modules.nets.checkpoints import build_network, read_checkpoint, state_fingerprint
from lightning_modules.nets.forward import eval_margin, run_network
from lightning_modules.selfsup.fusion import FUSION_KEY, with_fusion
from lightning_modules.selfsup.intensity import MAP_KEY, with_intensity_map

BACKENDS = ("auto", "torch", "compile", "onnxruntime")
PRECISIONS = ("auto", "32", "bf16")
FP32_TAIL = (
    "unet.decoder.blocks.-1",
    "input_block",
    "unet.segmentation_head",
)  # modules that run in fp32 under bf16 autocast


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
    """A resolved choice: ``backend`` is never ``auto``."""

    backend: str
    bf16: bool
    channels_last: bool
    note: str = ""
    eval_margin: int = 0  # pixels the network replicates around every pass; tile plans count them
    bytes_per_pixel: float = 0.0  # peak activation memory of one pass per input pixel (:func:`activation_bytes`)

    def describe(self) -> str:
        parts = [self.backend, "bf16" if self.bf16 else "fp32"]
        if self.backend != "onnxruntime" and self.channels_last:
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
    bf16 = precision == "bf16" or (precision == "auto" and bf16_native(device))
    if backend == "auto":  # fp32 on a CPU: ONNX Runtime where installed; bf16 and GPUs: torch
        onnx = device.type == "cpu" and not bf16 and importlib.util.find_spec("onnxruntime") is not None
        backend = "onnxruntime" if onnx else "torch"
    if backend == "onnxruntime":
        if device.type != "cpu":
            raise ValueError(f"backend=onnxruntime runs on the CPU; use device=cpu (got device={device.type})")
        if precision == "bf16":
            raise ValueError("backend=onnxruntime runs fp32 only; use precision=32 or auto")
        return InferencePath("onnxruntime", bf16=False, channels_last=False)
    return InferencePath(backend, bf16=bf16, channels_last=bool(channels_last))


class _LiveBytes(TorchFunctionMode):
    """Counts the bytes of the tensors that ops create while they are alive, and their peak."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self.storages: dict[int, list[int]] = {}  # storage pointer -> [bytes, tensors alive on it]

    def _release(self, key: int) -> None:
        entry = self.storages[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self.storages[key]

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's signature
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, tuple | list) else [out]:
            if isinstance(tensor, torch.Tensor):
                key = tensor.untyped_storage().data_ptr()
                entry = self.storages.setdefault(key, [tensor.untyped_storage().nbytes(), 0])
                if entry[1] == 0:
                    self.live += entry[0]
                entry[1] += 1
                weakref.finalize(tensor, self._release, key)
        self.peak = max(self.peak, self.live)
        return out


def activation_bytes(
    net: nn.Module, device: torch.device | str, bf16: bool, channels_last: bool, margin: int, side: int = 256
) -> float:
    """Peak bytes of the tensors one eager pass holds at once, per pixel of what the network computes
    (a ``side``² input widened by its evaluation ``margin``): the memory model of the tile plans. Computed,
    not measured, so it holds on any machine; ONNX Runtime and compiled graphs plan their memory and
    stay below it."""
    x = torch.rand(1, 1, side, side, device=device)
    with _LiveBytes() as counter:
        run_network(net, x, bf16, channels_last)
    return counter.peak / (side + 2 * margin) ** 2


class Fp32(nn.Module):
    """Runs ``module`` in fp32 with autocast off, whatever the caller's precision."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
        args = tuple(a.float() if isinstance(a, torch.Tensor) else a for a in args)
        kwargs = {k: v.float() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
        with torch.autocast(args[0].device.type, enabled=False):
            return self.module(*args, **kwargs)


def keep_fp32(net: nn.Module, names: tuple[str, ...] = FP32_TAIL) -> nn.Module:
    """``net`` with the submodules ``names`` (those it has; ``blocks.-1``: the last) wrapped in :class:`Fp32`."""
    for name in names:
        parent_name, _, child = name.rpartition(".")
        try:
            parent = net.get_submodule(parent_name)
        except AttributeError:
            continue
        if isinstance(parent, nn.ModuleList):
            child = str(int(child) % len(parent))
        if getattr(parent, child, None) is not None:
            setattr(parent, child, Fp32(getattr(parent, child)))
    return net


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
) -> tuple[nn.Module, InferencePath]:
    """The network of ``checkpoint`` ready to run along ``path``; returns it and the path with the
    network's ``eval_margin`` and ``bytes_per_pixel`` filled in.

    ``cache_dir`` holds ONNX exports (default ``$XDG_CACHE_HOME/xray-denoise/onnx``).
    """
    device = torch.device(device)
    hparams, state = read_checkpoint(checkpoint)
    net: nn.Module = build_network(hparams, state)
    if path.channels_last:
        net = net.to(memory_format=torch.channels_last)
    net = net.to(device).eval()
    if path.bf16:
        net = keep_fp32(net)
    margin = eval_margin(hparams)
    per_pixel = activation_bytes(net, device, path.bf16, path.channels_last, margin)
    path = replace(path, eval_margin=margin, bytes_per_pixel=per_pixel)
    if path.backend == "onnxruntime":  # the graph holds the network; fusion and map run around it in torch
        from lightning_modules.inference.onnx import OnnxPredictor, cached_onnx

        network = repr({k: hparams.get(k) for k in ("encoder_name", "residual", "norm", "decoder_attention_type")})
        onnx_path, _ = cached_onnx(net, state_fingerprint(state, network), cache_dir)
        net = OnnxPredictor(onnx_path, eval_margin=path.eval_margin)
    net = with_fusion(net, hparams.get(FUSION_KEY))  # N2V2: fused with the input
    net = with_intensity_map(net, hparams.get(MAP_KEY))  # self-supervised: to full dose
    if path.backend == "compile":
        options = {"freezing": True} if device.type == "cpu" else None
        return FixedBatch(torch.compile(net, dynamic=False, options=options), batch_size), path
    return net, path
