"""ONNX export and ONNX Runtime inference (``backend=onnxruntime``; needs the ``onnx`` extra).

The network is exported once per set of weights to ``<cache>/<fingerprint>.onnx`` with dynamic
batch, height and width; inputs are padded (by the network's evaluation margin, then to a multiple
of 32) in torch before ONNX Runtime runs (the export then holds no shape-dependent padding) and
cropped back afterwards.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from datamodules.io.atomic import atomic_write
from lightning_modules.nets.forward import forward_padded

INSTALL_HINT = "install the onnx extra: pip install 'xray-denoise[onnx]' (or uv sync --extra onnx)"
OPSET = 17
EXPORT_VERSION = "3"  # bump when the exported graph changes (_Core), so cached files are rebuilt


def require_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or an ImportError that names the extra to install."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError(f"backend=onnxruntime needs onnxruntime, which is not installed; {INSTALL_HINT}") from err
    return onnxruntime


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/xray-denoise/onnx`` (``~/.cache/...`` when unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "xray-denoise" / "onnx"


class _Core(nn.Module):
    """The DenoisingUnet without its padding: ``net.body`` and the input skip."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.skip(self.net.body(x), x)


def export_onnx(net: nn.Module, path: str | os.PathLike) -> Path:
    """Export ``net`` (a DenoisingUnet on the CPU, fp32) to ``path`` (written atomically).

    The input ``image`` is (batch, 1, height, width) with height and width multiples of 32.
    """
    require_onnxruntime()
    core = _Core(net).eval().cpu()
    example = torch.rand(1, 1, 64, 64)
    axes = {0: "batch", 2: "height", 3: "width"}

    def write(tmp: str) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            try:  # the TorchScript exporter: about 1 s here, against 15 s for the dynamo one
                torch.onnx.export(
                    core,
                    (example,),
                    tmp,
                    dynamo=False,
                    opset_version=OPSET,
                    input_names=["image"],
                    output_names=["denoised"],
                    dynamic_axes={"image": axes, "denoised": axes},
                )
            except Exception:  # noqa: BLE001 - a torch without the TorchScript exporter: use dynamo
                dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
                torch.onnx.export(
                    core,
                    (example,),
                    tmp,
                    dynamo=True,
                    input_names=["image"],
                    output_names=["denoised"],
                    dynamic_shapes={"x": dims},
                )

    return atomic_write(path, write)


class OnnxPredictor(nn.Module):
    """Runs an exported network with ONNX Runtime on CPU tensors: (B, 1, H, W) -> (B, 1, H, W)."""

    multiple = 32

    def __init__(self, path: str | os.PathLike, threads: int | None = None, eval_margin: int = 0) -> None:
        super().__init__()
        self.eval_margin = eval_margin  # the network's: padding happens here, outside the exported graph
        ort = require_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dtype != torch.float32:
            raise ValueError(f"backend=onnxruntime runs fp32 on the CPU; got {x.dtype} on {x.device}")
        run = lambda padded: torch.from_numpy(self.session.run(None, {"image": padded.contiguous().numpy()})[0])
        return forward_padded(run, x, self.multiple, self.eval_margin)


def cached_onnx(net: nn.Module, fingerprint: str, cache_dir: str | os.PathLike | None = None) -> tuple[Path, bool]:
    """``(path, exported_now)``: the ONNX file of ``net`` in the cache, exported when missing."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"unet-{fingerprint}-v{EXPORT_VERSION}-opset{OPSET}.onnx"
    if path.is_file():
        return path, False
    try:
        return export_onnx(net, path), True
    except OSError as err:
        raise PermissionError(f"cannot write the ONNX export to {cache_dir} ({err}); set XDG_CACHE_HOME") from err
